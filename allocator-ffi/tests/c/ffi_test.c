/*
 * C tests of the target allocator's ABI: lifecycle, every batch call, error paths, parity with
 * the Go vectors, and concurrent readers with a writer. Run by `make ffi-test` plain, under
 * AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind memcheck.
 *
 *   ffi_test <parity-v0.10.0.tsv> <parity-v1.0.0.tsv>
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "target_allocator.h"

/* Counted atomically (reader threads check too) and in 64 bits (the threads test's readers run
   as long as the writer does). */
static long long failures = 0;
static long long checks = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    __atomic_add_fetch(&checks, 1, __ATOMIC_RELAXED);                            \
    if (!(cond)) {                                                               \
      __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                        \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

#define CHECK_RC(call, want)                                                            \
  do {                                                                                  \
    ta_result rc_ = (call);                                                             \
    checks++;                                                                           \
    if (rc_ != (want)) {                                                                \
      failures++;                                                                       \
      fprintf(stderr, "%s:%d: %s returned %s, want %s\n", __FILE__, __LINE__, #call,   \
              ta_result_name(rc_), ta_result_name(want));                        \
    }                                                                                   \
  } while (0)

static ta_str S(const char *s) {
  ta_str out = {(const uint8_t *)s, s ? strlen(s) : 0};
  return out;
}

static ta_allocator *new_allocator(uint32_t strategy, uint32_t fallback, uint32_t ring) {
  ta_config cfg;
  CHECK_RC(ta_config_default(&cfg), TA_OK);
  cfg.strategy = strategy;
  cfg.fallback = fallback;
  cfg.ring_version = ring;
  ta_allocator *ta = NULL;
  CHECK_RC(ta_allocator_new(&cfg, &ta, NULL), TA_OK);
  return ta;
}

static void error_contains(ta_error *err, const char *needle) {
  char buf[512];
  size_t needed = 0;
  CHECK_RC(ta_error_message(err, buf, sizeof buf, &needed), TA_OK);
  CHECK(needed == strlen(buf) + 1);
  if (!strstr(buf, needle)) {
    failures++;
    fprintf(stderr, "error message %s does not name %s\n", buf, needle);
  }
}

static void test_lifecycle_and_config(void) {
  ta_allocator_free(NULL);
  ta_error_free(NULL);
  ta_config cfg;
  CHECK_RC(ta_config_default(&cfg), TA_OK);
  CHECK(cfg.strategy == TA_STRATEGY_CONSISTENT_HASHING && cfg.partition_count == 1061 &&
        cfg.replication_factor == 5 && cfg.load_factor == 1.1 && cfg.fallback == TA_STRATEGY_NONE);
  ta_allocator *ta = NULL;
  CHECK_RC(ta_allocator_new(&cfg, &ta, NULL), TA_OK);
  ta_config back;
  CHECK_RC(ta_allocator_config(ta, &back, NULL), TA_OK);
  /* Field by field: the struct has padding, which memcmp would read uninitialized. */
  CHECK(back.strategy == cfg.strategy && back.fallback == cfg.fallback &&
        back.ring_version == cfg.ring_version && back.partition_count == cfg.partition_count &&
        back.replication_factor == cfg.replication_factor && back.load_factor == cfg.load_factor &&
        back.weighted == cfg.weighted);
  ta_allocator_free(ta);

  ta_error *err = NULL;
  /* A NULL slot is refused without making (and leaking) an object: valgrind checks. */
  CHECK_RC(ta_error_new(NULL), TA_NULL_ARGUMENT);
  CHECK_RC(ta_error_new(&err), TA_OK);
  CHECK(ta_error_code(err) == TA_OK);
  cfg.partition_count = 0;
  CHECK_RC(ta_allocator_new(&cfg, &ta, err), TA_INVALID_CONFIG);
  CHECK(ta_error_code(err) == TA_INVALID_CONFIG);
  error_contains(err, "partition_count");
  cfg.partition_count = 1061;
  cfg.load_factor = 0.5;
  CHECK_RC(ta_allocator_new(&cfg, &ta, err), TA_INVALID_CONFIG);
  error_contains(err, "0.5");
  cfg.load_factor = 1.1;
  cfg.strategy = 77;
  CHECK_RC(ta_allocator_new(&cfg, &ta, err), TA_INVALID_CONFIG);
  error_contains(err, "77");
  cfg.strategy = TA_STRATEGY_CONSISTENT_HASHING;
  cfg.fallback = TA_STRATEGY_LEAST_WEIGHTED;
  CHECK_RC(ta_allocator_new(&cfg, &ta, err), TA_INVALID_CONFIG);
  CHECK_RC(ta_allocator_new(NULL, &ta, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_allocator_new(&cfg, NULL, err), TA_NULL_ARGUMENT);
  CHECK(strcmp(ta_result_name(TA_BUFFER_TOO_SMALL), "TA_BUFFER_TOO_SMALL") == 0);
  CHECK(strcmp(ta_result_message(TA_BUFFER_TOO_SMALL), "output buffer too small") == 0);
  CHECK(strcmp(ta_result_name(9999), "unknown result code") == 0);
  CHECK(strcmp(ta_result_message(9999), "unknown result code") == 0);
  CHECK(strlen(ta_version()) > 0);

  /* The message buffer protocol. */
  size_t needed = 0;
  char tiny[4];
  CHECK_RC(ta_error_message(err, tiny, sizeof tiny, &needed), TA_BUFFER_TOO_SMALL);
  CHECK(needed > sizeof tiny);
  CHECK_RC(ta_error_message(NULL, tiny, sizeof tiny, &needed), TA_NULL_ARGUMENT);
  ta_error_free(err);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static ta_view *new_view(void) {
  ta_view *v = NULL;
  CHECK_RC(ta_view_new(&v), TA_OK);
  return v;
}

static ta_view_data view_of(ta_view *v) {
  ta_view_data d;
  memset(&d, 0, sizeof d);
  CHECK_RC(ta_view_get(v, &d, NULL), TA_OK);
  return d;
}

/* Whether a view string equals a C string. */
static int str_is(ta_str s, const char *want) {
  return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

/* The name of view collector `i` ("" for TA_NO_COLLECTOR) into `buf`. */
static const char *name_at(const ta_view_data *d, uint32_t i, char *buf, size_t cap) {
  if (i == TA_NO_COLLECTOR) return "";
  CHECK(i < d->n_collectors);
  if (i >= d->n_collectors) return "?";
  size_t n = d->collectors[i].name.len < cap - 1 ? d->collectors[i].name.len : cap - 1;
  memcpy(buf, d->collectors[i].name.ptr, n);
  buf[n] = '\0';
  return buf;
}

/* Append one string in the labels encoding (length byte, or 255 + 3 bytes LE). */
static size_t enc(uint8_t *out, const char *s, size_t n) {
  size_t head = 1;
  if (n < 255) {
    out[0] = (uint8_t)n;
  } else {
    out[0] = 255;
    out[1] = (uint8_t)(n & 255);
    out[2] = (uint8_t)((n >> 8) & 255);
    out[3] = (uint8_t)((n >> 16) & 255);
    head = 4;
  }
  memcpy(out + head, s, n);
  return head + n;
}

static size_t enc_label(uint8_t *out, const char *name, const char *value) {
  size_t n = enc(out, name, strlen(name));
  return n + enc(out + n, value, strlen(value));
}

static ta_diff empty_diff(void) {
  ta_diff d;
  memset(&d, 0, sizeof d);
  return d;
}

/* A batch of `n` targets in columns, of job job_names[jobs[i]]; no weights, no nodes. */
static ta_target_batch target_batch(size_t n, const uint64_t *keys, const uint64_t *placements,
                                    const uint32_t *jobs, const ta_str *job_names, size_t n_jobs) {
  ta_target_batch b;
  memset(&b, 0, sizeof b);
  b.len = n;
  b.keys = keys;
  b.placements = placements;
  b.jobs = jobs;
  b.job_names = job_names;
  b.n_job_names = n_jobs;
  return b;
}

/* A batch of `n` label sets in `data` (the labels encoding), set i ending at ends[i], of job
   job_names[jobs[i]]; no weights, no keys out. */
static ta_label_batch label_batch(size_t n, const uint8_t *data, size_t len, const uint64_t *ends,
                                  const uint32_t *jobs, const ta_str *job_names, size_t n_jobs) {
  ta_label_batch b;
  memset(&b, 0, sizeof b);
  b.len = n;
  b.data = data;
  b.data_len = len;
  b.ends = ends;
  b.jobs = jobs;
  b.job_names = job_names;
  b.n_job_names = n_jobs;
  return b;
}

/* Owner names of `keys` in one read, as collector numbers parsed from "<prefix>-<n>" (-1: none). */
static void owners_by_number(ta_allocator *ta, const uint64_t *keys, size_t n, int *out, ta_view *v) {
  uint32_t *owners = calloc(n, sizeof *owners);
  CHECK_RC(ta_read(ta, keys, n, owners, v, NULL), TA_OK);
  ta_view_data d = view_of(v);
  for (size_t i = 0; i < n; i++) {
    if (owners[i] == TA_NO_COLLECTOR) {
      out[i] = -1;
      continue;
    }
    char buf[32];
    const char *name = name_at(&d, owners[i], buf, sizeof buf);
    const char *dash = strrchr(name, '-');
    out[i] = dash ? atoi(dash + 1) : -2;
  }
  free(owners);
}

typedef struct {
  uint64_t key;
  size_t index;
} keyed;

static int by_key(const void *a, const void *b) {
  uint64_t x = ((const keyed *)a)->key, y = ((const keyed *)b)->key;
  return x < y ? -1 : x > y;
}

/* The moves in `v` are exactly the keys whose owner differs between `before` and `after`
   (collector numbers as from owners_by_number), with the right sides. */
static void moves_equal_difference(ta_view *v, const uint64_t *keys, size_t n, const int *before,
                                   const int *after) {
  ta_view_data d = view_of(v);
  size_t changed = 0;
  for (size_t i = 0; i < n; i++) changed += before[i] != after[i];
  CHECK(d.n_moves == changed);
  keyed *sorted = calloc(n, sizeof *sorted);
  for (size_t i = 0; i < n; i++) sorted[i] = (keyed){keys[i], i};
  qsort(sorted, n, sizeof *sorted, by_key);
  for (size_t m = 0; m < d.n_moves; m++) {
    keyed want = {d.moves[m].key, 0};
    const keyed *hit = bsearch(&want, sorted, n, sizeof *sorted, by_key);
    CHECK(hit != NULL);
    if (!hit) continue;
    size_t i = hit->index;
    char fb[32], tb[32];
    const char *from = name_at(&d, d.moves[m].from, fb, sizeof fb);
    const char *to = name_at(&d, d.moves[m].to, tb, sizeof tb);
    int f = *from ? atoi(strrchr(from, '-') + 1) : -1;
    int t = *to ? atoi(strrchr(to, '-') + 1) : -1;
    CHECK(f == before[i] && t == after[i]);
  }
  free(sorted);
}

/* ---- batches ------------------------------------------------------------------------------- */

static void test_batches(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_view *v = new_view();
  ta_allocator *ta = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);

  ta_collector cols[3] = {{S("c-0"), S("n1")}, {S("c-1"), S("n2")}, {S("c-2"), S("")}};
  ta_diff d = empty_diff();
  d.add_collectors = cols;
  d.n_add_collectors = 3;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  CHECK(view_of(v).n_moves == 0 && view_of(v).summary.collectors == 3);
  d.n_add_collectors = 1;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_DUPLICATE_COLLECTOR);
  error_contains(err, "c-0");

  enum { N = 3000 };
  uint64_t *keys = calloc(N, sizeof *keys);
  uint64_t *placements = calloc(N, sizeof *placements);
  uint32_t *jobs = calloc(N, sizeof *jobs);
  ta_str job_names[2] = {S("nodes"), S("pods")};
  char addr[64];
  for (size_t i = 0; i < N; i++) {
    snprintf(addr, sizeof addr, "10.0.%zu.%zu:9100", i / 250, i % 250);
    CHECK_RC(ta_placement_hash(S(addr), &placements[i], NULL), TA_OK);
    keys[i] = 0x1000 + i;
    jobs[i] = (uint32_t)(i % 2);
  }
  int *before = calloc(N, sizeof *before), *after = calloc(N, sizeof *after);
  owners_by_number(ta, keys, N, before, v);

  d = empty_diff();
  d.upsert = target_batch(N, keys, placements, jobs, job_names, 2);
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  ta_view_data vd = view_of(v);
  CHECK(vd.n_moves == N && vd.n_collectors == 3 && vd.summary.targets == N);
  CHECK(vd.moves[0].from == TA_NO_COLLECTOR && vd.moves[0].to < 3);
  for (size_t c = 0; c < vd.n_collectors; c++) CHECK(vd.collectors[c].targets == 1000);
  owners_by_number(ta, keys, N, after, v);
  for (size_t i = 0; i < N; i++) CHECK(before[i] == -1 && after[i] >= 0);

  /* A read: every collector sorted by name with its load, owners from the same state. */
  uint32_t *owners = calloc(N, sizeof *owners);
  CHECK_RC(ta_read(ta, keys, N, owners, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 0 && vd.n_collectors == 3);
  CHECK(str_is(vd.collectors[0].name, "c-0") && str_is(vd.collectors[0].node, "n1"));
  CHECK(str_is(vd.collectors[2].name, "c-2") && vd.collectors[2].node.len == 0);
  size_t per[3] = {0, 0, 0};
  for (size_t i = 0; i < N; i++)
    if (owners[i] < 3) per[owners[i]]++;
  CHECK(per[0] == 1000 && per[1] == 1000 && per[2] == 1000);
  CHECK(vd.collectors[0].targets == 1000 && vd.collectors[0].weight == 1000);
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  CHECK_RC(ta_read(ta, keys, 4, owners, NULL, err), TA_NULL_ARGUMENT);

  uint64_t *mine = calloc(N, sizeof *mine);
  size_t needed = 0;
  CHECK_RC(ta_collector_targets(ta, S("c-0"), S(""), mine, N, &needed, err), TA_OK);
  CHECK(needed == 1000);
  for (size_t i = 1; i < needed; i++) CHECK(mine[i - 1] < mine[i]);
  CHECK_RC(ta_collector_targets(ta, S("c-0"), S("pods"), mine, N, &needed, err), TA_OK);
  CHECK(needed == 500);
  CHECK_RC(ta_collector_targets(ta, S("c-0"), S(""), mine, 10, &needed, err), TA_BUFFER_TOO_SMALL);
  CHECK(needed == 1000);
  CHECK_RC(ta_collector_targets(ta, S("nope"), S(""), mine, N, &needed, err), TA_UNKNOWN_COLLECTOR);

  /* Remove a collector: its targets, and only those, move; the view names the removed one. */
  owners_by_number(ta, keys, N, before, v);
  ta_str gone = S("c-1");
  d = empty_diff();
  d.remove_collectors = &gone;
  d.n_remove_collectors = 1;
  ta_view *moves = new_view();
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_OK);
  owners_by_number(ta, keys, N, after, v);
  moves_equal_difference(moves, keys, N, before, after);
  vd = view_of(moves);
  CHECK(vd.n_moves == 1000);
  for (size_t i = 0; i < vd.n_moves; i++) CHECK(str_is(vd.collectors[vd.moves[i].from].name, "c-1"));
  for (size_t c = 0; c < vd.n_collectors; c++)
    if (str_is(vd.collectors[c].name, "c-1")) CHECK(vd.collectors[c].targets == 0);
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_UNKNOWN_COLLECTOR);
  error_contains(err, "c-1");
  CHECK(vd.summary.collectors == 2 && vd.summary.targets == N && vd.summary.max_targets == 1500);
  CHECK(vd.summary.moves_reassigned == 1000 && vd.summary.moves_assigned == N);

  /* Churn in one diff: remove 100 targets, upsert 100 with new keys; moves are the difference. */
  owners_by_number(ta, keys, N, before, v);
  d = empty_diff();
  d.remove = keys;
  d.n_remove = 100;
  uint64_t fresh[100];
  for (int i = 0; i < 100; i++) fresh[i] = 0x900000 + (uint64_t)i;
  d.upsert = target_batch(100, fresh, placements, jobs, job_names, 2);
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_OK);
  uint64_t *all = calloc(N + 100, sizeof *all);
  memcpy(all, keys, N * sizeof *keys);
  memcpy(all + N, fresh, sizeof fresh);
  int *b2 = calloc(N + 100, sizeof *b2), *a2 = calloc(N + 100, sizeof *a2);
  memcpy(b2, before, N * sizeof *before);
  for (int i = 0; i < 100; i++) b2[N + i] = -1;
  owners_by_number(ta, all, N + 100, a2, v);
  moves_equal_difference(moves, all, N + 100, b2, a2);
  CHECK(view_of(moves).n_moves == 200);

  /* Unknown and conflicting targets are refused and change nothing. */
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_UNKNOWN_TARGET);
  d.remove = fresh;
  d.n_remove = 1;
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_CONFLICTING_TARGET);
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  CHECK(view_of(v).summary.targets == N);

  /* Bad columns: a job index past the table, a NULL column with a length. */
  uint32_t bad_jobs[1] = {7};
  d = empty_diff();
  d.upsert = target_batch(1, keys, placements, bad_jobs, job_names, 2);
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_INVALID_ARGUMENT);
  error_contains(err, "job index 7");
  d.upsert.jobs = NULL;
  CHECK_RC(ta_apply(ta, &d, moves, err), TA_NULL_ARGUMENT);
  error_contains(err, "upsert.jobs");
  CHECK_RC(ta_apply(ta, NULL, moves, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_apply(NULL, &d, moves, err), TA_NULL_ARGUMENT);

  /* A full listing reconciles; moves are reported through the view. */
  ta_target_batch ten = {0};
  ten.len = 10;
  ten.keys = keys;
  ten.placements = placements;
  ten.jobs = jobs;
  ten.job_names = job_names;
  ten.n_job_names = 2;
  CHECK_RC(ta_set_targets(ta, &ten, NULL, moves, err), TA_OK);
  CHECK(view_of(moves).summary.targets == 10);
  ta_collector only[1] = {{S("solo-0"), S("")}};
  CHECK_RC(ta_set_collectors(ta, only, 1, moves, err), TA_OK);
  vd = view_of(moves);
  CHECK(vd.summary.collectors == 1 && vd.summary.max_targets == 10 && vd.n_moves > 0);
  for (size_t i = 0; i < vd.n_moves; i++) CHECK(str_is(vd.collectors[vd.moves[i].to].name, "solo-0"));
  /* No view: the change applies all the same. */
  CHECK_RC(ta_set_targets(ta, &ten, NULL, NULL, err), TA_OK);

  /* Names: invalid UTF-8 and empty names. */
  const uint8_t bad_utf8[] = {0x63, 0xff, 0xfe};
  ta_collector bad = {{bad_utf8, sizeof bad_utf8}, S("")};
  d = empty_diff();
  d.add_collectors = &bad;
  d.n_add_collectors = 1;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_UTF8);
  error_contains(err, "collectors[0].name");
  ta_collector empty = {S(""), S("")};
  d.add_collectors = &empty;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_EMPTY_COLLECTOR_NAME);
  ta_str bad_job = {bad_utf8, sizeof bad_utf8};
  ten.job_names = &bad_job;
  ten.n_job_names = 1;
  ten.jobs = calloc(10, sizeof *ten.jobs);
  CHECK_RC(ta_set_targets(ta, &ten, NULL, NULL, err), TA_INVALID_UTF8);
  CHECK(ta_error_code(err) == TA_INVALID_UTF8);
  free((void *)ten.jobs);
  /* A success resets the error object. */
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  CHECK(ta_error_code(err) == TA_OK);
  CHECK_RC(ta_view_new(NULL), TA_NULL_ARGUMENT);
  CHECK_RC(ta_view_get(NULL, &vd, NULL), TA_NULL_ARGUMENT);
  ta_view_free(NULL);

  free(keys);
  free(placements);
  free(jobs);
  free(owners);
  free(mine);
  free(before);
  free(after);
  free(all);
  free(b2);
  free(a2);
  ta_view_free(moves);
  ta_view_free(v);
  ta_allocator_free(ta);
  ta_error_free(err);
}

/* ---- label sets ---------------------------------------------------------------------------- */

static void test_labels_and_snapshot(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_view *v = new_view();
  ta_allocator *ta = new_allocator(TA_STRATEGY_PER_NODE, TA_STRATEGY_CONSISTENT_HASHING, TA_RING_V1_0_0);
  ta_collector cols[2] = {{S("c-0"), S("node-a")}, {S("c-1"), S("node-b")}};
  CHECK_RC(ta_set_collectors(ta, cols, 2, NULL, err), TA_OK);

  /* Two label sets: one on node-a, one without a node (the fallback places it). */
  uint8_t data[512];
  size_t len = 0;
  uint64_t ends[2];
  len += enc_label(data + len, "__address__", "10.0.0.1:9100");
  len += enc_label(data + len, "__meta_kubernetes_pod_node_name", "node-a");
  len += enc_label(data + len, "instance", "a");
  ends[0] = len;
  len += enc_label(data + len, "__address__", "https://example.org");
  len += enc_label(data + len, "module", "http_2xx");
  ends[1] = len;
  ta_str job_names[2] = {S("node-exporter"), S("blackbox")};
  uint32_t jobs[2] = {0, 1};
  uint32_t weights[2] = {7, 9};
  uint64_t keys[2] = {0, 0};
  ta_diff d = empty_diff();
  d.upsert_labels = label_batch(2, data, len, ends, jobs, job_names, 2);
  d.upsert_labels.weights = weights;
  d.upsert_labels.keys_out = keys;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  ta_view_data vd = view_of(v);
  CHECK(vd.n_moves == 2 && vd.summary.targets == 2);
  for (size_t i = 0; i < 2; i++) CHECK(vd.moves[i].key == keys[i]);
  CHECK(str_is(vd.collectors[vd.moves[0].to].name, "c-0"));

  /* ta_target_key agrees, whatever the label order. */
  ta_str rn[3] = {S("instance"), S("__meta_kubernetes_pod_node_name"), S("__address__")};
  ta_str rv[3] = {S("a"), S("node-a"), S("10.0.0.1:9100")};
  uint64_t key0 = 0;
  CHECK_RC(ta_target_key(rn, rv, 3, job_names[0], &key0, err), TA_OK);
  CHECK(key0 == keys[0]);
  /* The Operator's own test value (shared/parity/operator-crosscheck.json). */
  ta_str tn = S("test_label"), tv = S("test-value");
  CHECK_RC(ta_target_key(&tn, &tv, 1, S("test-job"), &key0, err), TA_OK);
  CHECK(key0 == 11170662653441480747ULL);
  uint32_t owners[2];
  CHECK_RC(ta_read(ta, keys, 2, owners, v, err), TA_OK);
  vd = view_of(v);
  CHECK(str_is(vd.collectors[owners[0]].name, "c-0") && owners[1] != TA_NO_COLLECTOR);
  CHECK(vd.collectors[0].weight + vd.collectors[1].weight == 16);

  /* A set in columns and a set of label sets in one diff: both are upserted. */
  uint64_t ckey = 0x77, cplace = 0x1234;
  uint32_t cjob = 0;
  ta_str cjobs[1] = {S("static")};
  d.upsert = target_batch(1, &ckey, &cplace, &cjob, cjobs, 1);
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  CHECK(view_of(v).summary.targets == 3 && view_of(v).n_moves == 1);

  /* Label errors: a duplicate label, a missing address, a broken encoding, bad ends. */
  uint8_t bad[128];
  size_t blen = enc_label(bad, "__address__", "x");
  blen += enc_label(bad + blen, "__address__", "y");
  uint64_t bend = blen;
  d = empty_diff();
  d.upsert_labels = label_batch(1, bad, blen, &bend, jobs, job_names, 2);
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_DUPLICATE_LABEL);
  error_contains(err, "__address__");
  blen = enc_label(bad, "instance", "x");
  bend = blen;
  d.upsert_labels.data_len = blen;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_MISSING_ADDRESS);
  bad[0] = 200; /* a name longer than the data */
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_ARGUMENT);
  error_contains(err, "encoding");
  bend = blen + 1;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_ARGUMENT);
  error_contains(err, "ends[0]");
  /* A broken set among good ones is named, whether what precedes the break would hash (a
     name without a value after a whole label) or not (the first name runs past the end), and
     the change is refused whole. */
  {
    uint8_t three[256];
    uint64_t tends[3];
    uint32_t tjobs[3] = {0, 0, 0};
    size_t tlen = enc_label(three, "__address__", "10.9.0.1:80");
    tends[0] = tlen;
    tlen += enc_label(three + tlen, "__address__", "10.9.0.2:80");
    three[tlen++] = 3; /* a name "job" with no value after it */
    memcpy(three + tlen, "job", 3);
    tlen += 3;
    tends[1] = tlen;
    tlen += enc_label(three + tlen, "__address__", "10.9.0.3:80");
    tends[2] = tlen;
    uint64_t before = view_of(v).summary.targets;
    ta_diff t = empty_diff();
    t.upsert_labels = label_batch(3, three, tlen, tends, tjobs, job_names, 2);
    CHECK_RC(ta_apply(ta, &t, v, err), TA_INVALID_ARGUMENT);
    error_contains(err, "label set 1 is not in the labels encoding");
    three[tends[0]] = 250; /* set 1's first name now runs past the end */
    CHECK_RC(ta_apply(ta, &t, v, err), TA_INVALID_ARGUMENT);
    error_contains(err, "label set 1 is not in the labels encoding");
    CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
    CHECK(view_of(v).summary.targets == before);
  }

  uint32_t far_job = 5;
  bend = blen;
  d.upsert_labels.jobs = &far_job;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_ARGUMENT);
  error_contains(err, "jobs[0]");

  /* Long strings take the 4-byte length form. */
  char *big = malloc(70000);
  memset(big, 'v', 69999);
  big[69999] = '\0';
  uint8_t *bigdata = malloc(80000);
  size_t biglen = enc_label(bigdata, "__address__", "10.1.1.1:80");
  biglen += enc_label(bigdata + biglen, "blob", big);
  uint64_t bigend = biglen, bigkey = 0;
  d.upsert_labels.data = bigdata;
  d.upsert_labels.data_len = biglen;
  d.upsert_labels.ends = &bigend;
  d.upsert_labels.jobs = jobs;
  d.upsert_labels.keys_out = &bigkey;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_OK);
  ta_str bn[2] = {S("__address__"), S("blob")};
  ta_str bv[2] = {S("10.1.1.1:80"), S(big)};
  CHECK_RC(ta_target_key(bn, bv, 2, job_names[0], &key0, err), TA_OK);
  CHECK(bigkey == key0 && bigkey != 0);
  free(big);
  free(bigdata);

  /* Label values are hashed as bytes (as Go does); a node name is kept and must be UTF-8. */
  blen = enc_label(bad, "__address__", "10.9.9.8:80");
  blen += enc_label(bad + blen, "__meta_kubernetes_pod_node_name", "n\xff");
  bend = blen;
  d.upsert_labels.data = bad;
  d.upsert_labels.data_len = blen;
  d.upsert_labels.ends = &bend;
  d.upsert_labels.keys_out = NULL;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_UTF8);
  error_contains(err, "node name");

  /* Addresses are hashed as bytes too: XXH64 of "\xff:1" (cespare/xxhash v2.3.0 Sum64String). */
  uint64_t odd = 0;
  CHECK_RC(ta_placement_hash((ta_str){(const uint8_t *)"\xff:1", 3}, &odd, err), TA_OK);
  CHECK(odd == 12368082110706171017ULL);

  /* Bytes after the last label set are refused (a count off by one), naming data_len. */
  blen = enc_label(bad, "__address__", "10.9.9.7:80");
  bend = blen;
  d.upsert_labels.data = bad;
  d.upsert_labels.data_len = blen + 3;
  d.upsert_labels.ends = &bend;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_INVALID_ARGUMENT);
  error_contains(err, "data_len");

  /* Snapshot round trip, then corrupt bytes. */
  size_t needed;
  CHECK_RC(ta_snapshot(ta, NULL, 0, &needed, err), TA_BUFFER_TOO_SMALL);
  uint8_t *bytes = malloc(needed);
  size_t slen = needed;
  CHECK_RC(ta_snapshot(ta, bytes, slen, &needed, err), TA_OK);
  ta_allocator *back = NULL;
  CHECK_RC(ta_allocator_restore(bytes, slen, &back, err), TA_OK);
  ta_view *bv2 = new_view();
  uint32_t back_owners[2];
  CHECK_RC(ta_read(back, keys, 2, back_owners, bv2, err), TA_OK);
  CHECK_RC(ta_read(ta, keys, 2, owners, v, err), TA_OK);
  char a[32], b[32];
  ta_view_data va = view_of(v), vb = view_of(bv2);
  for (int i = 0; i < 2; i++)
    CHECK(strcmp(name_at(&va, owners[i], a, sizeof a), name_at(&vb, back_owners[i], b, sizeof b)) == 0);
  /* The digest survives the round trip and names a non-empty assignment. */
  uint64_t dig_ta = 0, dig_back = 0;
  CHECK_RC(ta_digest(ta, &dig_ta, err), TA_OK);
  CHECK_RC(ta_digest(back, &dig_back, err), TA_OK);
  CHECK(dig_ta == dig_back && dig_ta != 0);
  CHECK_RC(ta_digest(ta, NULL, err), TA_NULL_ARGUMENT);
  ta_view_free(bv2);
  ta_allocator_free(back);
  bytes[slen / 2] ^= 0x5a;
  back = NULL;
  CHECK_RC(ta_allocator_restore(bytes, slen, &back, err), TA_INVALID_SNAPSHOT);
  error_contains(err, "checksum");
  CHECK(back == NULL);
  CHECK_RC(ta_allocator_restore(bytes, 10, &back, err), TA_INVALID_SNAPSHOT);
  error_contains(err, "truncated");
  CHECK_RC(ta_allocator_restore(NULL, 0, &back, err), TA_INVALID_SNAPSHOT);
  free(bytes);
  ta_view_free(v);
  ta_allocator_free(ta);
  ta_error_free(err);
}

/* ---- label sets hashed on several threads ---------------------------------------------------- */

/* `n` label sets (unique address, one of 37 nodes or none, rotated label order) into `data`,
   set i ending at ends[i], of job jobs[i]. Set `no_address` lacks its address and set `broken`
   is cut in the middle of a label (either may be n: none). Returns the bytes used. */
static size_t threads_sets(uint8_t *data, uint64_t *ends, uint32_t *jobs, size_t n,
                           size_t no_address, size_t broken) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    char addr[32], node[16], inst[16];
    snprintf(addr, sizeof addr, "10.%zu.%zu.%zu:9100", i >> 16, (i >> 8) & 255, i & 255);
    snprintf(node, sizeof node, "node-%zu", (i * 7 + i / 5000) % 37);
    snprintf(inst, sizeof inst, "i-%zu", i % 11);
    if (i % 2) len += enc_label(data + len, "instance", inst);
    len += enc_label(data + len, i == no_address ? "__addresX__" : "__address__", addr);
    if (i % 9 != 4) len += enc_label(data + len, "__meta_kubernetes_pod_node_name", node);
    if (i == broken) data[len++] = 40; /* a name running past the end of the set */
    if (i % 2 == 0) len += enc_label(data + len, "instance", inst);
    ends[i] = len;
    jobs[i] = (uint32_t)(i % 3 == 0);
  }
  return len;
}

/* The message of `err` into `buf`. */
static const char *message_of(ta_error *err, char *buf, size_t cap) {
  size_t needed = 0;
  CHECK_RC(ta_error_message(err, buf, cap, &needed), TA_OK);
  return buf;
}

/* A batch of 20,480 label sets hashed on 1 and on 4 threads (4 runs of 5,120: more than the
   library's minimum of 4,096 a thread, so the batch is really cut): the same keys, the same moves
   to the same collectors, and for bad sets in several runs the same error, named by the first.
   Run on a thread of its own: the Rust runtime gives a thread that starts hashing threads a
   handle of its own (48 bytes), freed when that thread exits, which the main thread never does
   before the leak check. */
static void *threaded_label_hashing(void *unused) {
  (void)unused;
  enum { N = 20480 };
  uint8_t *data = malloc((size_t)N * 128);
  uint64_t *ends = malloc(N * sizeof *ends);
  uint32_t *jobs = malloc(N * sizeof *jobs);
  uint64_t *keys[2] = {malloc(N * sizeof(uint64_t)), malloc(N * sizeof(uint64_t))};
  ta_str job_names[2] = {S("pods"), S("nodes")};
  /* A collector on each of the 37 nodes and one on none (the fallback's). */
  char col_names[38][16], node_names[38][16];
  ta_collector cols[38];
  for (int c = 0; c < 38; c++) {
    snprintf(col_names[c], sizeof col_names[c], "c-%d", c);
    snprintf(node_names[c], sizeof node_names[c], c < 37 ? "node-%d" : "", c);
    cols[c].name = S(col_names[c]);
    cols[c].node = S(node_names[c]);
  }
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_allocator *ta[2];
  ta_view *v[2];
  const uint32_t threads[2] = {1, 4};
  size_t len = threads_sets(data, ends, jobs, N, N, N);
  for (int t = 0; t < 2; t++) {
    ta[t] = new_allocator(TA_STRATEGY_PER_NODE, TA_STRATEGY_CONSISTENT_HASHING, TA_RING_V0_10_0);
    v[t] = new_view();
    CHECK_RC(ta_set_collectors(ta[t], cols, 38, NULL, err), TA_OK);
    ta_diff d = empty_diff();
    d.upsert_labels = label_batch(N, data, len, ends, jobs, job_names, 2);
    d.upsert_labels.keys_out = keys[t];
    d.upsert_labels.threads = threads[t];
    CHECK_RC(ta_apply(ta[t], &d, v[t], err), TA_OK);
  }
  CHECK(memcmp(keys[0], keys[1], N * sizeof(uint64_t)) == 0);
  ta_view_data a = view_of(v[0]), b = view_of(v[1]);
  CHECK(a.n_moves == N && b.n_moves == N);
  for (size_t m = 0; m < a.n_moves && m < b.n_moves; m++) {
    char fa[32], fb[32], ta_[32], tb[32];
    CHECK(a.moves[m].key == b.moves[m].key);
    CHECK(strcmp(name_at(&a, a.moves[m].from, fa, sizeof fa), name_at(&b, b.moves[m].from, fb, sizeof fb)) == 0);
    CHECK(strcmp(name_at(&a, a.moves[m].to, ta_, sizeof ta_), name_at(&b, b.moves[m].to, tb, sizeof tb)) == 0);
  }
  /* Every target placed: those with a node on its node's collector. */
  CHECK(a.summary.targets == N && a.summary.unassigned == 0);
  CHECK(a.moves[0].to == b.moves[0].to && str_is(a.collectors[a.moves[0].to].name, "c-0"));

  /* Bad sets in several runs: (missing address in run 3, broken in run 1), then the reverse.
     Both thread counts refuse the change and name the same first set. */
  const size_t cases[2][2] = {{16000, 6000}, {6000, 16000}};
  const char *want[2] = {"label set 6000 is not in the labels encoding", "label set 6000"};
  for (int c = 0; c < 2; c++) {
    len = threads_sets(data, ends, jobs, N, cases[c][0], cases[c][1]);
    char msg[2][256];
    ta_result rc[2];
    for (int t = 0; t < 2; t++) {
      ta_diff d = empty_diff();
      d.upsert_labels = label_batch(N, data, len, ends, jobs, job_names, 2);
      d.upsert_labels.threads = threads[t];
      rc[t] = ta_apply(ta[t], &d, NULL, err);
      message_of(err, msg[t], sizeof msg[t]);
      CHECK(rc[t] == (c == 0 ? TA_INVALID_ARGUMENT : TA_MISSING_ADDRESS));
    }
    CHECK(rc[0] == rc[1]);
    CHECK(strcmp(msg[0], msg[1]) == 0);
    error_contains(err, want[c]);
  }
  for (int t = 0; t < 2; t++) {
    ta_view_free(v[t]);
    ta_allocator_free(ta[t]);
    free(keys[t]);
  }
  ta_error_free(err);
  free(data);
  free(ends);
  free(jobs);
  return NULL;
}

static void test_threaded_label_hashing(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, threaded_label_hashing, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- parity -------------------------------------------------------------------------------- */

static size_t split(char *line, char **fields, size_t max) {
  size_t n = 0;
  char *p = line;
  while (n < max) {
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = '\0';
    p = tab + 1;
  }
  return n;
}

static void test_parity(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    failures++;
    fprintf(stderr, "cannot open %s\n", path);
    return;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  ta_allocator *ta = NULL;
  ta_view *v = new_view();
  uint32_t ring = TA_RING_V0_10_0;
  size_t checked = 0;
  static char *fields[2048];
  static uint8_t data[1 << 16];
  while ((len = getline(&line, &cap, f)) > 0) {
    if (line[len - 1] == '\n') line[len - 1] = '\0';
    size_t n = split(line, fields, 2048);
    if (strcmp(fields[0], "ring") == 0) {
      ring = strcmp(fields[1], "v1.0.0") == 0 ? TA_RING_V1_0_0 : TA_RING_V0_10_0;
    } else if (strcmp(fields[0], "collectors") == 0) {
      ta_allocator_free(ta);
      ta = new_allocator(TA_STRATEGY_CONSISTENT_HASHING, TA_STRATEGY_NONE, ring);
      CHECK(n < 2048);
      for (size_t i = 1; i < n; i++) {
        ta_collector c = {S(fields[i]), S("")};
        ta_diff d = empty_diff();
        d.add_collectors = &c;
        d.n_add_collectors = 1;
        CHECK_RC(ta_apply(ta, &d, NULL, NULL), TA_OK);
      }
    } else if (strcmp(fields[0], "target") == 0) {
      ta_str job = S(fields[1]);
      size_t count = (n - 4) / 2, used = 0;
      for (size_t i = 0; i < count; i++) used += enc_label(data + used, fields[4 + 2 * i], fields[5 + 2 * i]);
      uint64_t end = used, key = 0;
      uint32_t job0 = 0;
      ta_diff d = empty_diff();
      d.upsert_labels = label_batch(1, data, used, &end, &job0, &job, 1);
      d.upsert_labels.keys_out = &key;
      CHECK_RC(ta_apply(ta, &d, v, NULL), TA_OK);
      CHECK(key == strtoull(fields[2], NULL, 10));
      /* The change's own view names the new owner (a target listed twice does not move). */
      ta_view_data vd = view_of(v);
      char name[128];
      if (vd.n_moves == 1) {
        CHECK(strcmp(name_at(&vd, vd.moves[0].to, name, sizeof name), fields[3]) == 0);
      } else {
        uint32_t owner;
        CHECK_RC(ta_read(ta, &key, 1, &owner, v, NULL), TA_OK);
        vd = view_of(v);
        CHECK(vd.n_moves == 0 && strcmp(name_at(&vd, owner, name, sizeof name), fields[3]) == 0);
      }
      checked++;
    }
  }
  free(line);
  fclose(f);
  ta_view_free(v);
  ta_allocator_free(ta);
  CHECK(checked >= 21000);
  printf("parity %s: %zu targets equal the Go vectors\n", path, checked);
}

/* ---- threads ------------------------------------------------------------------------------- */

/* A writer cycles the collector set through SETS known states ("col-0".."col-k" for k < SETS)
   while readers take ta_read pictures. Consistent hashing places by the collector set alone,
   so each state's owners were computed beforehand: a picture must match the state its
   collector table names, key for key, or it mixed two states. */
enum { THREAD_TARGETS = 2000, ROUNDS = 200, SETS = 8, SAMPLE = 64 };
static ta_allocator *shared;
static uint64_t thread_keys[THREAD_TARGETS];
static uint64_t thread_placements[THREAD_TARGETS];
static int expected[SETS][THREAD_TARGETS];
static int stop_readers = 0;
static long pictures = 0;

static void set_collectors(ta_allocator *ta, int n, ta_view *v) {
  char names[SETS][16];
  ta_collector cols[SETS];
  for (int c = 0; c < n; c++) {
    snprintf(names[c], sizeof names[c], "col-%d", c);
    cols[c].name = S(names[c]);
    cols[c].node = S("");
  }
  CHECK_RC(ta_set_collectors(ta, cols, (size_t)n, v, NULL), TA_OK);
}

static void *reader(void *arg) {
  (void)arg;
  ta_error *err = NULL;
  ta_error_new(&err);
  ta_view *v = new_view();
  uint64_t keys[SAMPLE];
  uint32_t owners[SAMPLE];
  int round = 0;
  while (!__atomic_load_n(&stop_readers, __ATOMIC_ACQUIRE)) {
    int at[SAMPLE];
    for (int i = 0; i < SAMPLE; i++) {
      at[i] = (i * 31 + round * 7) % THREAD_TARGETS;
      keys[i] = thread_keys[at[i]];
    }
    round++;
    CHECK_RC(ta_read(shared, keys, SAMPLE, owners, v, err), TA_OK);
    ta_view_data d = view_of(v);
    size_t k = d.n_collectors;
    CHECK(k >= 1 && k <= SETS && d.summary.collectors == k && d.summary.targets == THREAD_TARGETS);
    if (k < 1 || k > SETS) continue;
    uint64_t total = 0;
    for (size_t c = 0; c < k; c++) total += d.collectors[c].targets;
    CHECK(total + d.summary.unassigned == THREAD_TARGETS);
    for (int i = 0; i < SAMPLE; i++) {
      char buf[32];
      const char *name = name_at(&d, owners[i], buf, sizeof buf);
      int got = *name ? atoi(name + 4) : -1;
      CHECK(got == expected[k - 1][at[i]]);
    }
    __atomic_add_fetch(&pictures, 1, __ATOMIC_RELAXED);
  }
  ta_view_free(v);
  ta_error_free(err);
  return NULL;
}

static void test_threads(void) {
  shared = new_allocator(TA_STRATEGY_CONSISTENT_HASHING, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  static uint32_t zeros[THREAD_TARGETS];
  for (int i = 0; i < THREAD_TARGETS; i++) {
    thread_keys[i] = 0xABC000 + (uint64_t)i;
    thread_placements[i] = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
  }
  ta_str job = S("j");
  ta_target_batch all = {0};
  all.len = THREAD_TARGETS;
  all.keys = thread_keys;
  all.placements = thread_placements;
  all.jobs = zeros;
  all.job_names = &job;
  all.n_job_names = 1;
  CHECK_RC(ta_set_targets(shared, &all, NULL, NULL, NULL), TA_OK);
  ta_view *v = new_view();
  for (int k = 0; k < SETS; k++) {
    set_collectors(shared, k + 1, NULL);
    owners_by_number(shared, thread_keys, THREAD_TARGETS, expected[k], v);
  }
  pthread_t readers[3];
  for (int i = 0; i < 3; i++) pthread_create(&readers[i], NULL, reader, NULL);
  int prev = SETS - 1;
  for (int round = 0; round < ROUNDS; round++) {
    /* Writer: scale the collector set up and down; each change's moves are exactly the
       difference between the two known states. */
    int k = (round * 5) % SETS;
    set_collectors(shared, k + 1, v);
    moves_equal_difference(v, thread_keys, THREAD_TARGETS, expected[prev], expected[k]);
    prev = k;
  }
  __atomic_store_n(&stop_readers, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 3; i++) pthread_join(readers[i], NULL);
  CHECK(pictures > 0);
  CHECK_RC(ta_read(shared, NULL, 0, NULL, v, NULL), TA_OK);
  CHECK(view_of(v).summary.targets == THREAD_TARGETS && view_of(v).summary.unassigned == 0);
  ta_view_free(v);
  ta_allocator_free(shared);
}

/* A view read twice from the same collectors keeps its copy of the collector table and only
   refreshes the loads; a change filled into it, a collector change, or another allocator make
   the next read copy the table afresh. */
static void test_read_table(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_view *v = new_view();
  ta_allocator *ta = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  ta_collector cols[2] = {{S("c-b"), S("n1")}, {S("c-a"), S("")}};
  ta_diff d = empty_diff();
  d.add_collectors = cols;
  d.n_add_collectors = 2;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_OK);
  enum { M = 10 };
  uint64_t keys[M], placements[M];
  uint32_t jobs[M], owners[M];
  ta_str job_names[1] = {S("j")};
  for (size_t i = 0; i < M; i++) {
    keys[i] = 0x500 + i;
    placements[i] = i;
    jobs[i] = 0;
  }
  d = empty_diff();
  d.upsert = target_batch(M, keys, placements, jobs, job_names, 1);
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_OK);
  CHECK_RC(ta_read(ta, keys, M, owners, v, err), TA_OK);
  ta_view_data vd = view_of(v);
  CHECK(vd.n_collectors == 2 && str_is(vd.collectors[0].name, "c-a"));
  CHECK(vd.collectors[0].targets == 5 && vd.collectors[1].targets == 5);

  /* Targets removed without the view: the next read shows the new loads, same table. */
  d = empty_diff();
  d.remove = keys;
  d.n_remove = 4;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_OK);
  CHECK_RC(ta_read(ta, keys, M, owners, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_collectors == 2 && vd.summary.targets == M - 4);
  CHECK(vd.collectors[0].targets + vd.collectors[1].targets == M - 4);
  CHECK(str_is(vd.collectors[1].name, "c-b") && str_is(vd.collectors[1].node, "n1"));
  size_t counted[2] = {0, 0};
  for (size_t i = 0; i < M; i++) {
    CHECK((i < 4) == (owners[i] == TA_NO_COLLECTOR));
    if (owners[i] < 2) counted[owners[i]]++;
  }
  CHECK(counted[0] == vd.collectors[0].targets && counted[1] == vd.collectors[1].targets);

  /* A collector added: the next read lists it, with its node. */
  ta_collector more[1] = {{S("c-0"), S("n3")}};
  d = empty_diff();
  d.add_collectors = more;
  d.n_add_collectors = 1;
  CHECK_RC(ta_apply(ta, &d, NULL, err), TA_OK);
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_collectors == 3 && str_is(vd.collectors[0].name, "c-0"));
  CHECK(str_is(vd.collectors[0].node, "n3") && str_is(vd.collectors[2].name, "c-b"));

  /* A change's moves filled into the view, then a read: the whole table again. */
  d = empty_diff();
  d.remove = keys + 4;
  d.n_remove = 1;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  CHECK(view_of(v).n_moves == 1 && view_of(v).n_collectors == 1);
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  CHECK(view_of(v).n_collectors == 3 && view_of(v).n_moves == 0);

  /* Another allocator through the same view: its own collectors. */
  ta_allocator *other = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  ta_collector oc[1] = {{S("zz"), S("")}};
  d = empty_diff();
  d.add_collectors = oc;
  d.n_add_collectors = 1;
  CHECK_RC(ta_apply(other, &d, NULL, err), TA_OK);
  CHECK_RC(ta_read(other, NULL, 0, NULL, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_collectors == 1 && str_is(vd.collectors[0].name, "zz") && vd.summary.targets == 0);
  CHECK_RC(ta_read(ta, NULL, 0, NULL, v, err), TA_OK);
  CHECK(view_of(v).n_collectors == 3 && view_of(v).summary.targets == M - 5);

  ta_allocator_free(other);
  ta_allocator_free(ta);
  ta_view_free(v);
  ta_error_free(err);
}

/* Zone-aware rebalancing: the node → zone table is one call returning its moves; targets of a
   zone end on that zone's collector while it has room; bad tables are named. */
static void test_zones(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_view *v = new_view();
  ta_config cfg;
  CHECK_RC(ta_config_default(&cfg), TA_OK);
  cfg.strategy = TA_STRATEGY_REBALANCING;
  cfg.zones = 1;
  cfg.zone_skew = 0.5;
  ta_allocator *ta = NULL;
  CHECK_RC(ta_allocator_new(&cfg, &ta, NULL), TA_OK);
  cfg.zones = 2;
  ta_allocator *bad = NULL;
  CHECK_RC(ta_allocator_new(&cfg, &bad, err), TA_INVALID_CONFIG);
  error_contains(err, "zones");
  cfg.zones = 1;
  cfg.strategy = TA_STRATEGY_CONSISTENT_HASHING;
  CHECK_RC(ta_allocator_new(&cfg, &bad, err), TA_INVALID_CONFIG);
  error_contains(err, "zone_skew is only supported by rebalancing");

  ta_collector cols[2] = {{S("c-0"), S("na")}, {S("c-1"), S("nb")}};
  enum { N = 40 };
  uint64_t keys[N], placements[N];
  uint32_t jobs[N], nodes[N];
  ta_str job_names[1] = {S("pods")};
  ta_str node_names[2] = {S("na"), S("nb")};
  for (size_t i = 0; i < N; i++) {
    keys[i] = 0x5000 + i;
    placements[i] = i;
    jobs[i] = 0;
    nodes[i] = i < 20 ? 0 : 1; /* 20 targets on each node */
  }
  ta_diff d = empty_diff();
  d.add_collectors = cols;
  d.n_add_collectors = 2;
  d.upsert = target_batch(N, keys, placements, jobs, job_names, 1);
  d.upsert.nodes = nodes;
  d.upsert.node_names = node_names;
  d.upsert.n_node_names = 2;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  CHECK(view_of(v).n_moves == N);

  /* With zones, every target goes to the collector on a node of its zone. */
  ta_node_zone table[2] = {{S("na"), S("zone-a")}, {S("nb"), S("zone-b")}};
  CHECK_RC(ta_set_node_zones(ta, table, 2, v, err), TA_OK);
  ta_view_data vd = view_of(v);
  uint32_t owners[N];
  CHECK_RC(ta_read(ta, keys, N, owners, v, err), TA_OK);
  ta_view_data rd = view_of(v);
  size_t home = 0;
  for (size_t i = 0; i < N; i++) {
    CHECK(owners[i] < rd.n_collectors);
    if (owners[i] < rd.n_collectors &&
        str_is(rd.collectors[owners[i]].name, i < 20 ? "c-0" : "c-1"))
      home++;
  }
  CHECK(home == N);
  /* The change's moves were those that went home: as many as were away before. */
  CHECK(vd.n_moves <= N);
  /* Unchanged table: no moves. */
  CHECK_RC(ta_set_node_zones(ta, table, 2, v, err), TA_OK);
  CHECK(view_of(v).n_moves == 0);

  ta_node_zone dup[2] = {{S("na"), S("zone-a")}, {S("na"), S("zone-b")}};
  CHECK_RC(ta_set_node_zones(ta, dup, 2, v, err), TA_INVALID_ARGUMENT);
  error_contains(err, "\"na\" is listed twice");
  ta_node_zone empty[1] = {{S(""), S("zone-a")}};
  CHECK_RC(ta_set_node_zones(ta, empty, 1, v, err), TA_INVALID_ARGUMENT);
  error_contains(err, "node name is empty");
  CHECK_RC(ta_set_node_zones(ta, NULL, 1, v, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_set_node_zones(ta, NULL, 0, v, err), TA_OK);
  ta_allocator_free(ta);
  ta_view_free(v);
  ta_error_free(err);
}

/* The collectors a change's moves name, through one view kept across changes (the view keeps
   the names it has copied while the collector set stays the same): a collector replaced in one
   change, and a second allocator whose collector set has the same history but other names. */
static const char *owner_name(ta_view_data vd, uint32_t local) {
  static char buf[64];
  if (local == TA_NO_COLLECTOR) return "-";
  ta_str s = vd.collectors[local].name;
  size_t n = s.len < sizeof buf - 1 ? s.len : sizeof buf - 1;
  memcpy(buf, s.ptr, n);
  buf[n] = 0;
  return buf;
}

static void test_change_names(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_view *v = new_view();
  ta_allocator *ta = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  ta_allocator *other = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  ta_collector one[1] = {{S("c-a"), S("n1")}};
  ta_collector twin[1] = {{S("z-a"), S("n9")}};
  ta_diff d = empty_diff();
  d.add_collectors = one;
  d.n_add_collectors = 1;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  d.add_collectors = twin;
  CHECK_RC(ta_apply(other, &d, v, err), TA_OK);

  uint64_t keys[2] = {0x900, 0x901}, placements[2] = {1, 2};
  uint32_t jobs[2] = {0, 0};
  ta_str job_names[1] = {S("j")};
  d = empty_diff();
  d.upsert = target_batch(1, keys, placements, jobs, job_names, 1);
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  ta_view_data vd = view_of(v);
  CHECK(vd.n_moves == 1 && strcmp(owner_name(vd, vd.moves[0].to), "c-a") == 0);
  CHECK(str_is(vd.collectors[0].node, "n1"));
  /* Same collectors version on the other allocator, other names: the view shows them. */
  d.upsert.keys = keys + 1;
  d.upsert.placements = placements + 1;
  CHECK_RC(ta_apply(other, &d, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 1 && strcmp(owner_name(vd, vd.moves[0].to), "z-a") == 0);
  CHECK(str_is(vd.collectors[0].node, "n9"));

  /* c-a replaced by c-b in one change: the move goes from c-a (named though removed) to c-b. */
  ta_collector next[1] = {{S("c-b"), S("n2")}};
  ta_str gone[1] = {S("c-a")};
  d = empty_diff();
  d.add_collectors = next;
  d.n_add_collectors = 1;
  d.remove_collectors = gone;
  d.n_remove_collectors = 1;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 1 && vd.n_collectors == 2);
  CHECK(strcmp(owner_name(vd, vd.moves[0].from), "c-a") == 0);
  CHECK(strcmp(owner_name(vd, vd.moves[0].to), "c-b") == 0);
  CHECK(str_is(vd.collectors[vd.moves[0].to].node, "n2"));
  /* And back: c-b replaced by c-a, which may take the slot c-b had. */
  ta_str gone2[1] = {S("c-b")};
  d.add_collectors = one;
  d.remove_collectors = gone2;
  CHECK_RC(ta_apply(ta, &d, v, err), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 1);
  CHECK(strcmp(owner_name(vd, vd.moves[0].from), "c-b") == 0);
  CHECK(strcmp(owner_name(vd, vd.moves[0].to), "c-a") == 0);
  CHECK(str_is(vd.collectors[vd.moves[0].to].node, "n1"));

  ta_allocator_free(other);
  ta_allocator_free(ta);
  ta_view_free(v);
  ta_error_free(err);
}

/* A call that fails leaves the caller's view empty: never the moves or collectors of an
   earlier call, which a caller reading it without checking the result would take for this
   call's. */
static void test_failed_calls_empty_the_view(void) {
  ta_view *v = new_view();
  ta_allocator *ta = new_allocator(TA_STRATEGY_CONSISTENT_HASHING, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  ta_collector two[2] = {{S("c-a"), S("n1")}, {S("c-b"), S("n2")}};
  uint64_t keys[3] = {0x700, 0x701, 0x702}, placements[3] = {1, 2, 3};
  uint32_t jobs[3] = {0, 0, 0};
  ta_str job_names[1] = {S("j")};
  ta_diff d = empty_diff();
  d.add_collectors = two;
  d.n_add_collectors = 2;
  d.upsert = target_batch(3, keys, placements, jobs, job_names, 1);
  CHECK_RC(ta_apply(ta, &d, v, NULL), TA_OK);
  ta_view_data vd = view_of(v);
  CHECK(vd.n_moves == 3 && vd.n_collectors == 2);

  /* Removing a target that does not exist fails, in the core. */
  uint64_t unknown[1] = {0xdead};
  d = empty_diff();
  d.remove = unknown;
  d.n_remove = 1;
  CHECK_RC(ta_apply(ta, &d, v, NULL), TA_UNKNOWN_TARGET);
  vd = view_of(v);
  CHECK(vd.n_moves == 0 && vd.n_collectors == 0 && vd.summary.targets == 0);

  /* A read fills it; a change refused before it reaches the core (a job index out of range)
     empties it again. */
  uint32_t owners[3];
  CHECK_RC(ta_read(ta, keys, 3, owners, v, NULL), TA_OK);
  vd = view_of(v);
  CHECK(vd.n_collectors == 2 && vd.summary.targets == 3);
  uint32_t bad_jobs[1] = {7};
  d = empty_diff();
  d.upsert = target_batch(1, keys, placements, bad_jobs, job_names, 1);
  CHECK(ta_apply(ta, &d, v, NULL) != TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 0 && vd.n_collectors == 0 && vd.summary.targets == 0);

  /* A failed read (NULL owners for three keys) empties it too. */
  CHECK_RC(ta_read(ta, keys, 3, owners, v, NULL), TA_OK);
  CHECK(ta_read(ta, keys, 3, NULL, v, NULL) != TA_OK);
  vd = view_of(v);
  CHECK(vd.n_moves == 0 && vd.n_collectors == 0 && vd.summary.collectors == 0);

  ta_allocator_free(ta);
  ta_view_free(v);
}

/* A program built against another version's header is refused, naming the struct. */
static void test_layout(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  size_t sizes[] = TA_LAYOUT_SIZES;
  size_t n = sizeof sizes / sizeof sizes[0];
  CHECK_RC(ta_check_layout(sizes, n, err), TA_OK);
  sizes[3] -= sizeof(uint32_t); /* ta_label_batch without its last field */
  CHECK_RC(ta_check_layout(sizes, n, err), TA_INVALID_ARGUMENT);
  char buf[512];
  size_t needed = 0;
  CHECK_RC(ta_error_message(err, buf, sizeof buf, &needed), TA_OK);
  CHECK(strstr(buf, "ta_label_batch") != NULL);
  sizes[3] += sizeof(uint32_t);
  CHECK_RC(ta_check_layout(sizes, n - 1, err), TA_INVALID_ARGUMENT);
  CHECK_RC(ta_check_layout(NULL, n, err), TA_NULL_ARGUMENT);
  ta_error_free(err);
}

int main(int argc, char **argv) {
  test_layout();
  test_lifecycle_and_config();
  test_batches();
  test_read_table();
  test_change_names();
  test_failed_calls_empty_the_view();
  test_labels_and_snapshot();
  test_threaded_label_hashing();
  test_zones();
  for (int i = 1; i < argc; i++) test_parity(argv[i]);
  test_threads();
  printf("%lld passed, %lld failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
