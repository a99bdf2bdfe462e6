/*
 * c2c: the round-trip time of one cache line between two CPUs, in nanoseconds (median of several rounds).
 *
 * Two threads, pinned to CPU A and CPU B, take turns writing a counter that the other one spins on; one
 * round trip is two cache-line transfers. On this project's 2-vCPU machines the value is bimodal and
 * changes while a benchmark runs (about 100 ns or about 520 ns: where the host places the two vCPUs),
 * and every loopback result moves with it, so bench/loopback.sh records it next to each run.
 *
 *   cc -O2 -pthread -o c2c c2c.c && ./c2c [CPU_A CPU_B [ROUND_TRIPS]]      (default: 0 1 100000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 5

static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;
static long trips = 100000;
static int cpu_a = 0, cpu_b = 1;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *responder(void *arg) {
    (void) arg;
    if (pin(cpu_b) != 0) {
        fprintf(stderr, "c2c: cannot pin to cpu %d\n", cpu_b);
        exit(2);
    }
    for (long round = 0; round < ROUNDS; round++) {
        for (long i = 1; i <= trips; i++) {
            long want = round * trips + i;
            while (atomic_load_explicit(&ping, memory_order_acquire) != want) { }
            atomic_store_explicit(&pong, want, memory_order_release);
        }
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc >= 3) {
        cpu_a = atoi(argv[1]);
        cpu_b = atoi(argv[2]);
    }
    if (argc >= 4) {
        trips = atol(argv[3]);
    }
    if (pin(cpu_a) != 0) {
        fprintf(stderr, "c2c: cannot pin to cpu %d\n", cpu_a);
        return 2;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, responder, NULL);
    double ns[ROUNDS];
    for (long round = 0; round < ROUNDS; round++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 1; i <= trips; i++) {
            long want = round * trips + i;
            atomic_store_explicit(&ping, want, memory_order_release);
            while (atomic_load_explicit(&pong, memory_order_acquire) != want) { }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[round] = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / trips;
    }
    pthread_join(thread, NULL);
    qsort(ns, ROUNDS, sizeof ns[0], by_value);
    printf("%.0f\n", ns[ROUNDS / 2]);
    return 0;
}
