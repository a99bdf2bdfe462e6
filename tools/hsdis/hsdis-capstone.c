/* HotSpot's disassembler plugin (the interface -XX:+PrintAssembly and JMH's perfasm load) over Debian's capstone: a profiling aid for
 * developers, not part of the switch. Built and installed into the JDK by tools/hsdis/build.sh. */
#include <stdint.h>
#include <stdio.h>
#include <capstone/capstone.h>

typedef void *(*event_cb)(void *, const char *, void *);
typedef int (*printf_cb)(void *, const char *, ...);

void *decode_instructions_virtual(uintptr_t start_va, uintptr_t end_va, unsigned char *buffer, uintptr_t length,
                                  event_cb ev, void *ev_stream, printf_cb pr, void *pr_stream,
                                  const char *options, int newline) {
    csh h;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK) return NULL;
    cs_option(h, CS_OPT_SKIPDATA, CS_OPT_ON);
    cs_insn *insn;
    size_t n = cs_disasm(h, buffer, length, (uint64_t) start_va, 0, &insn);
    for (size_t i = 0; i < n; i++) {
        if (ev) ev(ev_stream, "insn", (void *) (uintptr_t) insn[i].address);
        pr(pr_stream, "%s\t%s", insn[i].mnemonic, insn[i].op_str);
        if (ev) ev(ev_stream, "/insn", (void *) (uintptr_t) (insn[i].address + insn[i].size));
        if (newline) pr(pr_stream, "\n");
    }
    if (n) cs_free(insn, n);
    cs_close(&h);
    return NULL;
}
