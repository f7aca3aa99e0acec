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

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    checks++;                                                                    \
    if (!(cond)) {                                                               \
      failures++;                                                                \
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

static void test_batches(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_allocator *ta = new_allocator(TA_STRATEGY_LEAST_WEIGHTED, TA_STRATEGY_NONE, TA_RING_V0_10_0);

  ta_collector cols[3] = {{S("c-a"), S("n1")}, {S("c-b"), S("n2")}, {S("c-c"), S("")}};
  CHECK_RC(ta_add_collectors(ta, cols, 3, err), TA_OK);
  CHECK_RC(ta_add_collectors(ta, cols, 1, err), TA_DUPLICATE_COLLECTOR);
  error_contains(err, "c-a");

  enum { N = 3000 };
  ta_target *targets = calloc(N, sizeof *targets);
  uint64_t *keys = calloc(N, sizeof *keys);
  char addr[64];
  for (size_t i = 0; i < N; i++) {
    snprintf(addr, sizeof addr, "10.0.%zu.%zu:9100", i / 250, i % 250);
    uint64_t placement = 0;
    CHECK_RC(ta_placement_hash(S(addr), &placement, NULL), TA_OK);
    targets[i].key = 0x1000 + i;
    targets[i].placement = placement;
    targets[i].job = S(i % 2 ? "pods" : "nodes");
    targets[i].node = S("");
    targets[i].weight = 1;
    keys[i] = targets[i].key;
  }
  CHECK_RC(ta_upsert_targets(ta, targets, N, err), TA_OK);

  size_t needed = 0;
  CHECK_RC(ta_last_moves(ta, NULL, 0, &needed, err), TA_BUFFER_TOO_SMALL);
  CHECK(needed == N);
  ta_move *moves = calloc(needed, sizeof *moves);
  CHECK_RC(ta_last_moves(ta, moves, needed, &needed, err), TA_OK);
  CHECK(moves[0].from == TA_NO_COLLECTOR && moves[0].to != TA_NO_COLLECTOR);
  free(moves);

  uint32_t *owners = calloc(N, sizeof *owners);
  CHECK_RC(ta_lookup(ta, keys, N, owners, err), TA_OK);
  size_t per[3] = {0, 0, 0};
  uint32_t ids[3];
  for (int c = 0; c < 3; c++) CHECK_RC(ta_collector_id(ta, cols[c].name, &ids[c], err), TA_OK);
  for (size_t i = 0; i < N; i++)
    for (int c = 0; c < 3; c++)
      if (owners[i] == ids[c]) per[c]++;
  CHECK(per[0] == 1000 && per[1] == 1000 && per[2] == 1000);

  /* Stats, names, targets of a collector (whole, and of one job). */
  ta_collector_stats stats[3];
  CHECK_RC(ta_get_collector_stats(ta, stats, 3, &needed, err), TA_OK);
  CHECK(needed == 3 && stats[0].targets == 1000 && stats[0].weight == 1000);
  char name[16];
  CHECK_RC(ta_collector_name(ta, stats[1].id, name, sizeof name, &needed, err), TA_OK);
  CHECK(strcmp(name, "c-b") == 0 && needed == 4);
  CHECK_RC(ta_collector_name(ta, stats[1].id, name, 2, &needed, err), TA_BUFFER_TOO_SMALL);
  CHECK_RC(ta_collector_name(ta, 4242, name, sizeof name, &needed, err), TA_UNKNOWN_COLLECTOR);
  uint64_t *mine = calloc(N, sizeof *mine);
  CHECK_RC(ta_collector_targets(ta, S("c-a"), S(""), mine, N, &needed, err), TA_OK);
  CHECK(needed == 1000);
  for (size_t i = 1; i < needed; i++) CHECK(mine[i - 1] < mine[i]);
  CHECK_RC(ta_collector_targets(ta, S("c-a"), S("pods"), mine, N, &needed, err), TA_OK);
  CHECK(needed == 500);
  CHECK_RC(ta_collector_targets(ta, S("c-a"), S(""), mine, 10, &needed, err), TA_BUFFER_TOO_SMALL);
  CHECK(needed == 1000);
  CHECK_RC(ta_collector_targets(ta, S("nope"), S(""), mine, N, &needed, err), TA_UNKNOWN_COLLECTOR);

  /* Remove a collector: its targets, and only those, move. */
  ta_str gone = S("c-b");
  CHECK_RC(ta_remove_collectors(ta, &gone, 1, err), TA_OK);
  CHECK_RC(ta_last_moves(ta, NULL, 0, &needed, err), TA_BUFFER_TOO_SMALL);
  CHECK(needed == 1000);
  moves = calloc(needed, sizeof *moves);
  CHECK_RC(ta_last_moves(ta, moves, needed, &needed, err), TA_OK);
  for (size_t i = 0; i < needed; i++) CHECK(moves[i].from == ids[1] && moves[i].to != ids[1]);
  /* The removed collector's id still names it until the next change. */
  CHECK_RC(ta_collector_name(ta, ids[1], name, sizeof name, &needed, err), TA_OK);
  CHECK(strcmp(name, "c-b") == 0);
  free(moves);
  CHECK_RC(ta_remove_collectors(ta, &gone, 1, err), TA_UNKNOWN_COLLECTOR);
  error_contains(err, "c-b");

  ta_summary sum;
  CHECK_RC(ta_get_summary(ta, &sum, err), TA_OK);
  CHECK(sum.collectors == 2 && sum.targets == N && sum.unassigned == 0 && sum.max_targets == 1500);
  CHECK(sum.moves_reassigned == 1000 && sum.moves_assigned == N);

  /* Remove targets; unknown and conflicting ones are refused and change nothing. */
  CHECK_RC(ta_remove_targets(ta, keys, 100, err), TA_OK);
  CHECK_RC(ta_remove_targets(ta, keys, 1, err), TA_UNKNOWN_TARGET);
  CHECK_RC(ta_apply(ta, &targets[200], 1, &keys[200], 1, NULL, 0, NULL, 0, err), TA_CONFLICTING_TARGET);
  CHECK_RC(ta_get_summary(ta, &sum, err), TA_OK);
  CHECK(sum.targets == N - 100);

  /* A full listing reconciles. */
  CHECK_RC(ta_set_targets(ta, targets, 10, err), TA_OK);
  CHECK_RC(ta_get_summary(ta, &sum, err), TA_OK);
  CHECK(sum.targets == 10);
  ta_collector only[1] = {{S("solo"), S("")}};
  CHECK_RC(ta_set_collectors(ta, only, 1, err), TA_OK);
  CHECK_RC(ta_get_summary(ta, &sum, err), TA_OK);
  CHECK(sum.collectors == 1 && sum.max_targets == 10);

  /* Zero lengths with NULL arrays are no-ops; NULL with a length is an error. */
  CHECK_RC(ta_upsert_targets(ta, NULL, 0, err), TA_OK);
  CHECK_RC(ta_upsert_targets(ta, NULL, 5, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_remove_targets(ta, NULL, 0, err), TA_OK);
  CHECK_RC(ta_lookup(ta, keys, 4, NULL, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_upsert_targets(NULL, targets, 1, err), TA_NULL_ARGUMENT);
  CHECK_RC(ta_get_summary(NULL, &sum, err), TA_NULL_ARGUMENT);

  /* Names: invalid UTF-8 and empty names. */
  const uint8_t bad_utf8[] = {0x63, 0xff, 0xfe};
  ta_collector bad = {{bad_utf8, sizeof bad_utf8}, S("")};
  CHECK_RC(ta_add_collectors(ta, &bad, 1, err), TA_INVALID_UTF8);
  error_contains(err, "collectors[0].name");
  ta_collector empty = {S(""), S("")};
  CHECK_RC(ta_add_collectors(ta, &empty, 1, err), TA_EMPTY_COLLECTOR_NAME);
  ta_target bad_job = targets[0];
  bad_job.job.ptr = bad_utf8;
  bad_job.job.len = sizeof bad_utf8;
  CHECK_RC(ta_upsert_targets(ta, &bad_job, 1, err), TA_INVALID_UTF8);
  CHECK(ta_error_code(err) == TA_INVALID_UTF8);
  /* A success resets the error object. */
  CHECK_RC(ta_get_summary(ta, &sum, err), TA_OK);
  CHECK(ta_error_code(err) == TA_OK);

  free(targets);
  free(keys);
  free(owners);
  free(mine);
  ta_allocator_free(ta);
  ta_error_free(err);
}

static void test_labels_and_snapshot(void) {
  ta_error *err = NULL;
  CHECK_RC(ta_error_new(&err), TA_OK);
  ta_allocator *ta = new_allocator(TA_STRATEGY_PER_NODE, TA_STRATEGY_CONSISTENT_HASHING, TA_RING_V1_0_0);
  ta_collector cols[2] = {{S("c-0"), S("node-a")}, {S("c-1"), S("node-b")}};
  CHECK_RC(ta_add_collectors(ta, cols, 2, err), TA_OK);

  /* Two targets: one on node-a, one without a node (the fallback places it). */
  ta_str jobs[2] = {S("node-exporter"), S("blackbox")};
  uint32_t counts[2] = {3, 2};
  uint32_t weights[2] = {7, 9};
  ta_str names[5] = {S("__meta_kubernetes_pod_node_name"), S("instance"), S("__address__"), S("__address__"), S("module")};
  ta_str values[5] = {S("node-a"), S("a"), S("10.0.0.1:9100"), S("https://example.org"), S("http_2xx")};
  uint64_t keys[2];
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, counts, weights, 2, names, values, 5, keys, err), TA_OK);
  uint64_t key0 = 0;
  /* ta_target_key agrees, whatever the label order. */
  ta_str rn[3] = {names[2], names[1], names[0]};
  ta_str rv[3] = {values[2], values[1], values[0]};
  CHECK_RC(ta_target_key(rn, rv, 3, jobs[0], &key0, err), TA_OK);
  CHECK(key0 == keys[0]);
  /* The Operator's own test value (shared/parity/operator-crosscheck.json). */
  ta_str tn = S("test_label"), tv = S("test-value");
  CHECK_RC(ta_target_key(&tn, &tv, 1, S("test-job"), &key0, err), TA_OK);
  CHECK(key0 == 11170662653441480747ULL);
  uint32_t owners[2];
  CHECK_RC(ta_lookup(ta, keys, 2, owners, err), TA_OK);
  uint32_t id0;
  CHECK_RC(ta_collector_id(ta, S("c-0"), &id0, err), TA_OK);
  CHECK(owners[0] == id0 && owners[1] != TA_NO_COLLECTOR);
  ta_collector_stats stats[2];
  size_t needed;
  CHECK_RC(ta_get_collector_stats(ta, stats, 2, &needed, err), TA_OK);
  CHECK(stats[0].weight + stats[1].weight == 16);

  /* Label errors: a duplicate label, a missing address, counts that do not add up. */
  ta_str dn[2] = {S("__address__"), S("__address__")};
  ta_str dv[2] = {S("x"), S("y")};
  uint32_t two = 2;
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, &two, NULL, 1, dn, dv, 2, NULL, err), TA_DUPLICATE_LABEL);
  error_contains(err, "__address__");
  uint32_t one = 1;
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, &one, NULL, 1, &names[1], &values[1], 1, NULL, err), TA_MISSING_ADDRESS);
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, &two, NULL, 1, dn, dv, 1, NULL, err), TA_INVALID_ARGUMENT);
  error_contains(err, "label_counts");

  /* Label values are hashed as bytes (as Go does), so a non-UTF-8 value is fine; a node name
     is kept by the allocator and must be UTF-8. */
  const uint8_t raw[] = {0x6e, 0xff};
  ta_str bn[2] = {S("__address__"), S("blob")};
  ta_str bv[2] = {S("10.9.9.9:80"), {raw, sizeof raw}};
  uint64_t bkey = 0;
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, &two, NULL, 1, bn, bv, 2, &bkey, err), TA_OK);
  CHECK(bkey != 0);
  ta_str nn[2] = {S("__address__"), S("__meta_kubernetes_pod_node_name")};
  ta_str nv[2] = {S("10.9.9.8:80"), {raw, sizeof raw}};
  CHECK_RC(ta_upsert_labeled_targets(ta, jobs, &two, NULL, 1, nn, nv, 2, NULL, err), TA_INVALID_UTF8);
  error_contains(err, "node name");
  CHECK_RC(ta_remove_targets(ta, &bkey, 1, err), TA_OK);

  /* Snapshot round trip, then corrupt bytes. */
  CHECK_RC(ta_snapshot(ta, NULL, 0, &needed, err), TA_BUFFER_TOO_SMALL);
  uint8_t *bytes = malloc(needed);
  size_t len = needed;
  CHECK_RC(ta_snapshot(ta, bytes, len, &needed, err), TA_OK);
  ta_allocator *back = NULL;
  CHECK_RC(ta_allocator_restore(bytes, len, &back, err), TA_OK);
  uint32_t back_owners[2];
  CHECK_RC(ta_lookup(back, keys, 2, back_owners, err), TA_OK);
  char a[32], b[32];
  for (int i = 0; i < 2; i++) {
    CHECK_RC(ta_collector_name(ta, owners[i], a, sizeof a, &needed, err), TA_OK);
    CHECK_RC(ta_collector_name(back, back_owners[i], b, sizeof b, &needed, err), TA_OK);
    CHECK(strcmp(a, b) == 0);
  }
  ta_allocator_free(back);
  bytes[len / 2] ^= 0x5a;
  back = NULL;
  CHECK_RC(ta_allocator_restore(bytes, len, &back, err), TA_INVALID_SNAPSHOT);
  error_contains(err, "checksum");
  CHECK(back == NULL);
  CHECK_RC(ta_allocator_restore(bytes, 10, &back, err), TA_INVALID_SNAPSHOT);
  error_contains(err, "truncated");
  CHECK_RC(ta_allocator_restore(NULL, 0, &back, err), TA_INVALID_SNAPSHOT);
  free(bytes);
  ta_allocator_free(ta);
  ta_error_free(err);
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
  uint32_t ring = TA_RING_V0_10_0;
  size_t checked = 0;
  static char *fields[2048];
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
        CHECK_RC(ta_add_collectors(ta, &c, 1, NULL), TA_OK);
      }
    } else if (strcmp(fields[0], "target") == 0) {
      ta_str job = S(fields[1]);
      uint32_t count = (uint32_t)((n - 4) / 2);
      ta_str names[32], values[32];
      CHECK(count <= 32);
      if (count > 32) continue;
      for (uint32_t i = 0; i < count; i++) {
        names[i] = S(fields[4 + 2 * i]);
        values[i] = S(fields[5 + 2 * i]);
      }
      uint64_t key = 0;
      CHECK_RC(ta_upsert_labeled_targets(ta, &job, &count, NULL, 1, names, values, count, &key, NULL), TA_OK);
      CHECK(key == strtoull(fields[2], NULL, 10));
      uint32_t owner;
      CHECK_RC(ta_lookup(ta, &key, 1, &owner, NULL), TA_OK);
      char name[128];
      size_t needed;
      CHECK_RC(ta_collector_name(ta, owner, name, sizeof name, &needed, NULL), TA_OK);
      CHECK(strcmp(name, fields[3]) == 0);
      checked++;
    }
  }
  free(line);
  fclose(f);
  ta_allocator_free(ta);
  CHECK(checked >= 21000);
  printf("parity %s: %zu targets equal the Go vectors\n", path, checked);
}

/* ---- threads ------------------------------------------------------------------------------- */

enum { THREAD_TARGETS = 2000, ROUNDS = 200 };
static ta_allocator *shared;
static ta_target thread_targets[THREAD_TARGETS];
static int stop_readers = 0;

static void *reader(void *arg) {
  (void)arg;
  ta_error *err = NULL;
  ta_error_new(&err);
  uint64_t keys[64];
  uint32_t owners[64];
  ta_collector_stats stats[16];
  size_t needed;
  while (!__atomic_load_n(&stop_readers, __ATOMIC_ACQUIRE)) {
    for (int i = 0; i < 64; i++) keys[i] = thread_targets[(i * 31) % THREAD_TARGETS].key;
    CHECK_RC(ta_lookup(shared, keys, 64, owners, err), TA_OK);
    ta_summary sum;
    CHECK_RC(ta_get_summary(shared, &sum, err), TA_OK);
    /* Readers never see a half-applied change: loads always add up. */
    ta_result rc = ta_get_collector_stats(shared, stats, 16, &needed, err);
    CHECK(rc == TA_OK);
    uint64_t total = 0;
    for (size_t i = 0; i < needed && i < 16; i++) total += stats[i].targets;
    CHECK(sum.collectors == 0 || total + sum.unassigned <= THREAD_TARGETS);
  }
  ta_error_free(err);
  return NULL;
}

static void test_threads(void) {
  shared = new_allocator(TA_STRATEGY_CONSISTENT_HASHING, TA_STRATEGY_NONE, TA_RING_V0_10_0);
  for (int i = 0; i < THREAD_TARGETS; i++) {
    thread_targets[i].key = 0xABC000 + (uint64_t)i;
    thread_targets[i].placement = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
    thread_targets[i].job = S("j");
    thread_targets[i].node = S("");
    thread_targets[i].weight = 1;
  }
  pthread_t readers[3];
  for (int i = 0; i < 3; i++) pthread_create(&readers[i], NULL, reader, NULL);
  char names[8][16];
  for (int round = 0; round < ROUNDS; round++) {
    /* Writer: scale the collector set up and down, churn targets. */
    int n = 1 + round % 8;
    ta_collector cols[8];
    for (int c = 0; c < n; c++) {
      snprintf(names[c], sizeof names[c], "col-%d", c);
      cols[c].name = S(names[c]);
      cols[c].node = S("");
    }
    CHECK_RC(ta_set_collectors(shared, cols, (size_t)n, NULL), TA_OK);
    size_t from = (size_t)(round * 97) % (THREAD_TARGETS - 500);
    CHECK_RC(ta_set_targets(shared, &thread_targets[from], 500, NULL), TA_OK);
  }
  __atomic_store_n(&stop_readers, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 3; i++) pthread_join(readers[i], NULL);
  ta_summary sum;
  CHECK_RC(ta_get_summary(shared, &sum, NULL), TA_OK);
  CHECK(sum.targets == 500 && sum.unassigned == 0);
  ta_allocator_free(shared);
}

int main(int argc, char **argv) {
  test_lifecycle_and_config();
  test_batches();
  test_labels_and_snapshot();
  for (int i = 1; i < argc; i++) test_parity(argv[i]);
  test_threads();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
