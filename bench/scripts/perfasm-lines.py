#!/usr/bin/env python3
"""Sums the samples of a JMH -prof perfasm output by source line of the project's code.

Each instruction's share goes to the innermost io.vswitch frame of the debug information printed after it
(the JIT's "; - Class::method@bci (line N)" comments), or, for an instruction without one, to the frame seen
last before it. Only the regions perfasm printed count (raise its tooBigThreshold to print large ones).
  python3 bench/scripts/perfasm-lines.py perfasm.txt [TOP]
"""
import collections
import re
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
insn = re.compile(r'^[\s│╭╰╮╯─↗↘]*([0-9.]+%)?[\s│╭╰╮╯─↗↘]*(0x[0-9a-f]{16}):\s+(\S.*)$')
frame = re.compile(r';\s+-\s+(?:\(reexecute\)\s+)?([\w.$]+)::(\w+)@(\d+)\s+\(line (\d+)\)')
by_line = collections.Counter()
pending = []
last = '(region start)'
total = 0.0
in_region = False
with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
        if line.startswith('....[Hottest Region '):
            in_region, last, pending = True, '(region start)', []
            continue
        if line.startswith('....[Hottest Regions]'):
            break
        if not in_region:
            continue
        m = insn.match(line) if '0x0000' in line else None
        if m:
            pct = float(m.group(1)[:-1]) if m.group(1) else 0.0
            total += pct
            for p in pending:
                by_line[last] += p
            pending = [pct]
            continue
        fm = frame.search(line)
        if fm and pending:
            cls, meth, _, ln = fm.groups()
            if cls.startswith('io.vswitch') and 'jmh_generated' not in cls:
                last = cls.split('.')[-1] + '::' + meth + ':' + ln
                for p in pending:
                    by_line[last] += p
                pending = []
for p in pending:
    by_line[last] += p
print('samples in the printed regions: %.1f%%' % total)
for key, share in by_line.most_common(top):
    print('%6.2f%%  %s' % (share, key))
