/*
 * udpblast: a minimal UDP traffic generator and sink for bench/kernel-vxlan.sh (no pktgen, iperf3 or
 * netperf on these machines). The sender sends BURST datagrams of SIZE payload bytes per sendmmsg, as fast
 * as it can, for SECONDS; the sink counts what recvmmsg hands it and prints datagrams per second over the
 * window from its first datagram to the end. Both print one line: "sent N" / "received N in T s: R pps".
 *
 *   cc -O2 -o udpblast udpblast.c
 *   ./udpblast send DST_IP PORT SIZE SECONDS [CPU]
 *   ./udpblast recv BIND_IP PORT SECONDS [CPU]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BURST 32

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void pin(int argc, char **argv, int at) {
    if (argc > at) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(argv[at]), &set);
        sched_setaffinity(0, sizeof set, &set);
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: udpblast send DST PORT SIZE SECONDS [CPU] | recv BIND PORT SECONDS [CPU]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &addr.sin_addr);
    static char data[BURST][2048];
    struct iovec iov[BURST];
    struct mmsghdr msgs[BURST];
    memset(msgs, 0, sizeof msgs);
    if (strcmp(argv[1], "send") == 0) {
        int size = atoi(argv[4]);
        double seconds = atof(argv[5]);
        pin(argc, argv, 6);
        if (connect(fd, (struct sockaddr *) &addr, sizeof addr) < 0) {
            perror("connect");
            return 1;
        }
        for (int i = 0; i < BURST; i++) {
            iov[i].iov_base = data[i];
            iov[i].iov_len = size;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        long sent = 0;
        double end = now() + seconds;
        while (now() < end) {
            for (int k = 0; k < 16; k++) {
                int n = sendmmsg(fd, msgs, BURST, 0);
                if (n > 0) {
                    sent += n;
                } else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
                    perror("sendmmsg");
                    return 1;
                }
            }
        }
        printf("sent %ld\n", sent);
        return 0;
    }
    double seconds = atof(argv[4]);
    pin(argc, argv, 5);
    if (bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    for (int i = 0; i < BURST; i++) {
        iov[i].iov_base = data[i];
        iov[i].iov_len = sizeof data[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    long received = 0;
    double first = 0, last = 0, end = now() + seconds;
    while (now() < end) {
        int n = recvmmsg(fd, msgs, BURST, 0, NULL);
        if (n > 0) {
            if (received == 0) {
                first = now();
            }
            received += n;
            last = now();
        }
    }
    double window = last > first ? last - first : 0;
    printf("received %ld in %.3f s: %.0f pps\n", received, window, window > 0 ? received / window : 0);
    return 0;
}
