/*
 * share.c: allocate a small target set to three collectors through the C ABI and print each
 * collector's share, then what moves when a fourth collector joins.
 *
 *   cargo build --release -p allocator-ffi
 *   cc -I include examples/c/share.c target/release/libtarget_allocator.a \
 *      -lpthread -ldl -lm -o target/share && target/share
 */
#include <stdio.h>
#include <string.h>

#include "target_allocator.h"

static ta_str str(const char *s) {
  ta_str out = {(const uint8_t *)s, strlen(s)};
  return out;
}

static int fail(ta_result rc, ta_error *err) {
  char msg[256];
  size_t needed;
  ta_error_message(err, msg, sizeof msg, &needed);
  fprintf(stderr, "error %s: %s\n", ta_result_name(rc), msg);
  return 1;
}

static void print_shares(ta_allocator *ta) {
  ta_collector_stats stats[8];
  size_t n = 0;
  if (ta_get_collector_stats(ta, stats, 8, &n, NULL) != TA_OK) return;
  for (size_t i = 0; i < n; i++) {
    char name[64];
    size_t needed;
    ta_collector_name(ta, stats[i].id, name, sizeof name, &needed, NULL);
    printf("  %-18s %3u targets\n", name, stats[i].targets);
  }
}

int main(void) {
  ta_error *err = NULL;
  ta_error_new(&err);
  ta_config cfg;
  ta_config_default(&cfg); /* consistent-hashing, exactly as the Go Target Allocator */
  ta_allocator *ta = NULL;
  ta_result rc = ta_allocator_new(&cfg, &ta, err);
  if (rc != TA_OK) return fail(rc, err);

  ta_collector collectors[4] = {
      {str("otel-collector-0"), str("")},
      {str("otel-collector-1"), str("")},
      {str("otel-collector-2"), str("")},
      {str("otel-collector-3"), str("")},
  };
  if ((rc = ta_add_collectors(ta, collectors, 3, err)) != TA_OK) return fail(rc, err);

  /* 60 targets, each a label set: __address__ plus a pod name; the library hashes them. */
  enum { N = 60 };
  char addresses[N][32], pods[N][32];
  ta_str jobs[N], names[2 * N], values[2 * N];
  uint32_t counts[N];
  for (int i = 0; i < N; i++) {
    snprintf(addresses[i], sizeof addresses[i], "10.1.%d.%d:8080", i / 16, i % 16);
    snprintf(pods[i], sizeof pods[i], "checkout-%d", i);
    jobs[i] = str(i % 3 ? "kubernetes-pods" : "node-exporter");
    counts[i] = 2;
    names[2 * i] = str("__address__");
    values[2 * i] = str(addresses[i]);
    names[2 * i + 1] = str("__meta_kubernetes_pod_name");
    values[2 * i + 1] = str(pods[i]);
  }
  rc = ta_upsert_labeled_targets(ta, jobs, counts, NULL, N, names, values, 2 * N, NULL, err);
  if (rc != TA_OK) return fail(rc, err);
  printf("%d targets on 3 collectors:\n", N);
  print_shares(ta);

  if ((rc = ta_add_collectors(ta, &collectors[3], 1, err)) != TA_OK) return fail(rc, err);
  size_t moved = 0;
  ta_last_moves(ta, NULL, 0, &moved, NULL);
  printf("after adding otel-collector-3, %zu targets moved:\n", moved);
  print_shares(ta);

  ta_allocator_free(ta);
  ta_error_free(err);
  return 0;
}
