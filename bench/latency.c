/*
 * Paced-rate latency probe for bench/run.py, on librdkafka's C API.
 *
 *   latency BOOTSTRAP TOPIC RATE COUNT SIZE ACKS
 *
 * A producer sends COUNT records of SIZE bytes to partition 0 of TOPIC at
 * RATE records/s (linger.ms=0), each stamped with CLOCK_MONOTONIC at send
 * time; a consumer in the same process reads partition 0 from offset 0.
 * Prints one line:
 *
 *   ack_ms p50 p99 max e2e_ms p50 p99 max acked N consumed N
 *
 * ack = send to delivery report; e2e = send to the consumer receiving it.
 *
 * Why C and three threads rather than a Python loop: at 10,000 records/s a
 * Python client on a 2-core machine measures its own interpreter and GIL
 * more than the broker. Here the sender sleeps until each absolute send
 * time (clock_nanosleep), a second thread blocks in rd_kafka_poll so a
 * delivery report is timed as soon as librdkafka has it, and the consumer
 * blocks in rd_kafka_consumer_poll: no thread spins.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdkafka.h"

static int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t *acks, *e2e;
static atomic_long n_acks, n_e2e, n_failed;
static long count;
static atomic_int producing_done;

static void die(const char *what, const char *why) {
        fprintf(stderr, "latency: %s: %s\n", what, why);
        exit(2);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
        char err[512];
        if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
                die(k, err);
}

static int64_t stamp_of(const void *payload, size_t len) {
        int64_t ts;
        if (!payload || len < sizeof(ts))
                return -1;
        memcpy(&ts, payload, sizeof(ts));
        return ts;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        (void)rk;
        (void)opaque;
        int64_t sent = stamp_of(m->payload, m->len);
        if (m->err || sent < 0) {
                atomic_fetch_add(&n_failed, 1);
                return;
        }
        long i = atomic_fetch_add(&n_acks, 1);
        if (i < count)
                acks[i] = now_ns() - sent;
}

static void *serve_reports(void *arg) {
        rd_kafka_t *producer = arg;
        while (!atomic_load(&producing_done) ||
               rd_kafka_outq_len(producer) > 0)
                rd_kafka_poll(producer, 50);
        return NULL;
}

struct consumer_args {
        rd_kafka_t *rk;
        int64_t deadline;
};

static void *consume(void *arg) {
        struct consumer_args *c = arg;
        while (atomic_load(&n_e2e) < count && now_ns() < c->deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
                if (!m)
                        continue;
                if (!m->err) {
                        int64_t sent = stamp_of(m->payload, m->len);
                        long i = atomic_fetch_add(&n_e2e, 1);
                        if (sent >= 0 && i < count)
                                e2e[i] = now_ns() - sent;
                }
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

static int cmp(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n), in ms. */
static double pct(const int64_t *v, long n, double p) {
        if (n == 0)
                return -1;
        long i = (long)(p / 100.0 * (double)(n - 1) + 0.5);
        return (double)v[i] / 1e6;
}

int main(int argc, char **argv) {
        if (argc != 7) {
                fprintf(stderr,
                        "usage: latency BOOTSTRAP TOPIC RATE COUNT SIZE ACKS\n");
                return 2;
        }
        const char *bootstrap = argv[1], *topic = argv[2], *ack = argv[6];
        double rate = atof(argv[3]);
        count       = atol(argv[4]);
        size_t size = (size_t)atol(argv[5]);
        if (rate <= 0 || count <= 0 || size < sizeof(int64_t))
                die("arguments", "RATE and COUNT must be positive, SIZE >= 8");
        acks = calloc((size_t)count, sizeof(*acks));
        e2e  = calloc((size_t)count, sizeof(*e2e));
        char *payload = calloc(1, size);
        if (!acks || !e2e || !payload)
                die("calloc", strerror(errno));
        memset(payload, 'p', size);
        char err[512];

        rd_kafka_conf_t *cc = rd_kafka_conf_new();
        set(cc, "bootstrap.servers", bootstrap);
        set(cc, "group.id", "bench-latency");
        set(cc, "enable.auto.commit", "false");
        set(cc, "fetch.wait.max.ms", "500");
        set(cc, "log_level", "3");
        rd_kafka_t *consumer =
            rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
        if (!consumer)
                die("consumer", err);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = 0;
        if (rd_kafka_assign(consumer, parts))
                die("assign", "failed");
        rd_kafka_topic_partition_list_destroy(parts);

        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        set(pc, "bootstrap.servers", bootstrap);
        set(pc, "linger.ms", "0");
        set(pc, "acks", ack);
        set(pc, "log_level", "3");
        rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
        rd_kafka_t *producer =
            rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
        if (!producer)
                die("producer", err);

        /* Connect both clients before the clock starts: the first fetch
         * is then already waiting when the first record is sent. */
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(producer, 0, NULL, &md, 10000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_metadata_destroy(md);
        for (int i = 0; i < 10; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
                if (m)
                        rd_kafka_message_destroy(m);
        }

        double seconds = (double)count / rate;
        struct consumer_args cargs = {
            consumer, now_ns() + (int64_t)((seconds + 30) * 1e9)};
        pthread_t reader, reporter;
        pthread_create(&reader, NULL, consume, &cargs);
        pthread_create(&reporter, NULL, serve_reports, producer);

        int64_t start = now_ns();
        double interval = 1e9 / rate;
        for (long i = 0; i < count; i++) {
                int64_t due = start + (int64_t)(interval * (double)i);
                struct timespec ts = {due / 1000000000, due % 1000000000};
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
                                       NULL) == EINTR)
                        ;
                int64_t sent = now_ns();
                memcpy(payload, &sent, sizeof(sent));
                rd_kafka_resp_err_t e;
                while ((e = rd_kafka_producev(
                            producer, RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_PARTITION(0),
                            RD_KAFKA_V_VALUE(payload, size),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END)) ==
                       RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        struct timespec pause = {0, 100000};
                        nanosleep(&pause, NULL);
                }
                if (e)
                        die("produce", rd_kafka_err2str(e));
        }
        rd_kafka_flush(producer, 30000);
        atomic_store(&producing_done, 1);
        pthread_join(reporter, NULL);
        pthread_join(reader, NULL);

        long na = atomic_load(&n_acks), ne = atomic_load(&n_e2e);
        if (na > count)
                na = count;
        if (ne > count)
                ne = count;
        qsort(acks, (size_t)na, sizeof(*acks), cmp);
        qsort(e2e, (size_t)ne, sizeof(*e2e), cmp);
        printf("ack_ms %.3f %.3f %.3f e2e_ms %.3f %.3f %.3f acked %ld "
               "consumed %ld failed %ld\n",
               pct(acks, na, 50), pct(acks, na, 99), na ? acks[na - 1] / 1e6 : -1.0,
               pct(e2e, ne, 50), pct(e2e, ne, 99), ne ? e2e[ne - 1] / 1e6 : -1.0,
               na, ne, atomic_load(&n_failed));

        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);
        rd_kafka_destroy(producer);
        return na == count && ne == count ? 0 : 1;
}
