/*
 * share.c: allocate a small target set to three collectors through the C ABI and print each
 * collector's share, then what moves when a fourth collector joins (the change's own moves,
 * returned with it).
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

/* Append a string in the labels encoding (here every string is shorter than 255 bytes). */
static size_t put(uint8_t *out, const char *s) {
  size_t n = strlen(s);
  out[0] = (uint8_t)n;
  memcpy(out + 1, s, n);
  return n + 1;
}

static void print_shares(ta_allocator *ta, ta_view *view) {
  if (ta_read(ta, NULL, 0, NULL, view, NULL) != TA_OK) return;
  ta_view_data d;
  ta_view_get(view, &d, NULL);
  for (size_t i = 0; i < d.n_collectors; i++)
    printf("  %-18.*s %3u targets\n", (int)d.collectors[i].name.len,
           (const char *)d.collectors[i].name.ptr, d.collectors[i].targets);
}

int main(void) {
  ta_error *err = NULL;
  ta_error_new(&err);
  ta_view *view = NULL;
  ta_view_new(&view);
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
  if ((rc = ta_set_collectors(ta, collectors, 3, NULL, err)) != TA_OK) return fail(rc, err);

  /* 60 targets, each a label set (__address__ plus a pod name, sorted by name) in the labels
     encoding; the library hashes them. Jobs are indexes into a table of two names. */
  enum { N = 60 };
  static uint8_t data[N * 96]; /* each label set takes about 70 bytes */
  uint64_t ends[N];
  uint32_t jobs[N];
  ta_str job_names[2] = {str("kubernetes-pods"), str("node-exporter")};
  size_t len = 0;
  char text[32];
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "10.1.%d.%d:8080", i / 16, i % 16);
    len += put(data + len, "__address__");
    len += put(data + len, text);
    snprintf(text, sizeof text, "checkout-%d", i);
    len += put(data + len, "__meta_kubernetes_pod_name");
    len += put(data + len, text);
    ends[i] = len;
    jobs[i] = i % 3 ? 0 : 1;
  }
  ta_diff diff;
  memset(&diff, 0, sizeof diff);
  diff.upsert_labels.len = N;
  diff.upsert_labels.data = data;
  diff.upsert_labels.data_len = len;
  diff.upsert_labels.ends = ends;
  diff.upsert_labels.jobs = jobs;
  diff.upsert_labels.job_names = job_names;
  diff.upsert_labels.n_job_names = 2;
  if ((rc = ta_apply(ta, &diff, NULL, err)) != TA_OK) return fail(rc, err);
  printf("%d targets on 3 collectors:\n", N);
  print_shares(ta, view);

  memset(&diff, 0, sizeof diff);
  diff.add_collectors = &collectors[3];
  diff.n_add_collectors = 1;
  if ((rc = ta_apply(ta, &diff, view, err)) != TA_OK) return fail(rc, err);
  ta_view_data moved;
  ta_view_get(view, &moved, NULL);
  printf("after adding otel-collector-3, %zu targets moved:\n", moved.n_moves);
  for (size_t i = 0; i < moved.n_moves && i < 3; i++) {
    ta_str from = moved.collectors[moved.moves[i].from].name;
    ta_str to = moved.collectors[moved.moves[i].to].name;
    printf("  %016llx  %.*s -> %.*s\n", (unsigned long long)moved.moves[i].key, (int)from.len,
           (const char *)from.ptr, (int)to.len, (const char *)to.ptr);
  }
  print_shares(ta, view);

  ta_view_free(view);
  ta_allocator_free(ta);
  ta_error_free(err);
  return 0;
}
