/* waker (uv_async_t ping-pong with threads), channel (threads send to the loop through a
 * mutex-protected queue and uv_async_send), queue_work (no-op jobs) and fs_stat. */
#include "uvbench.h"

/* ---- waker ---- */

typedef struct {
  uv_async_t async; /* first: the callback's handle is the peer */
  uv_sem_t reply;
  uv_thread_t thread;
  uint64_t rounds, count;
} peer_t;

static void peer_async_cb(uv_async_t *async) {
  peer_t *peer = (peer_t *)async;
  peer->count++;
  uv_sem_post(&peer->reply);
  if (peer->count == peer->rounds) uv_close((uv_handle_t *)async, NULL);
}

static void peer_thread(void *arg) {
  peer_t *peer = arg;
  uint64_t i;
  for (i = 0; i < peer->rounds; i++) {
    CHECK(uv_async_send(&peer->async));
    uv_sem_wait(&peer->reply);
  }
}

/* waker THREADS ROUNDS_PER_THREAD */
int waker_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uint64_t threads = arg_u64(argc, argv, 0, "THREADS");
  uint64_t rounds = arg_u64(argc, argv, 1, "ROUNDS");
  peer_t *peers = calloc(threads, sizeof *peers);
  uint64_t i, start, total = 0;
  double elapsed;
  if (peers == NULL) die("out of memory");
  for (i = 0; i < threads; i++) {
    peers[i].rounds = rounds;
    CHECK(uv_async_init(loop, &peers[i].async, peer_async_cb));
    CHECK(uv_sem_init(&peers[i].reply, 0));
  }
  start = uv_hrtime();
  for (i = 0; i < threads; i++) CHECK(uv_thread_create(&peers[i].thread, peer_thread, &peers[i]));
  uv_run(loop, UV_RUN_DEFAULT);
  elapsed = seconds_since(start);
  for (i = 0; i < threads; i++) {
    CHECK(uv_thread_join(&peers[i].thread));
    uv_sem_destroy(&peers[i].reply);
    total += peers[i].count;
  }
  if (total != threads * rounds) die("%llu round trips", (unsigned long long)total);
  result("round_trips_per_s", (double)total / elapsed);
  CHECK(uv_loop_close(loop));
  free(peers);
  return 0;
}

/* ---- channel: the usual libuv idiom for messages from other threads ----
 * Producers push onto a growable array under a mutex, then uv_async_send (which coalesces);
 * the async callback swaps the shared array with its own empty one under the mutex and counts
 * the messages outside it. A producer that is done says so under the same mutex after its
 * last push, so once every producer is done and the array is taken, nothing more can come
 * (the handle is closed then). */

typedef struct {
  uint64_t *items;
  size_t len, cap;
} msg_queue_t;

static uv_async_t chan_async;
static uv_mutex_t chan_mutex;
static msg_queue_t chan_shared; /* guarded by chan_mutex */
static msg_queue_t chan_local;  /* the loop thread's */
static uint64_t chan_producers, chan_done; /* chan_done guarded by chan_mutex */
static uint64_t chan_per_thread, chan_got, chan_total, chan_last_ns;

static void chan_push(msg_queue_t *q, uint64_t v) {
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 1024;
    uint64_t *items = realloc(q->items, cap * sizeof *items);
    if (items == NULL) die("out of memory");
    q->items = items;
    q->cap = cap;
  }
  q->items[q->len++] = v;
}

static void chan_async_cb(uv_async_t *async) {
  msg_queue_t taken;
  size_t i;
  int ended;
  uv_mutex_lock(&chan_mutex);
  taken = chan_shared;
  chan_shared = chan_local;
  ended = chan_done == chan_producers;
  uv_mutex_unlock(&chan_mutex);
  for (i = 0; i < taken.len; i++) {
    if (taken.items[i] >= chan_per_thread) die("bad message %llu", (unsigned long long)taken.items[i]);
    chan_got++;
    if (chan_got == chan_total) chan_last_ns = uv_hrtime();
  }
  taken.len = 0;
  chan_local = taken;
  if (ended) uv_close((uv_handle_t *)async, NULL);
}

static void chan_producer(void *arg) {
  uint64_t i;
  (void)arg;
  for (i = 0; i < chan_per_thread; i++) {
    uv_mutex_lock(&chan_mutex);
    chan_push(&chan_shared, i);
    uv_mutex_unlock(&chan_mutex);
    CHECK(uv_async_send(&chan_async));
  }
  /* Under the mutex: once the loop sees every producer done, no send is still touching the
   * handle it then closes. */
  uv_mutex_lock(&chan_mutex);
  chan_done++;
  CHECK(uv_async_send(&chan_async));
  uv_mutex_unlock(&chan_mutex);
}

/* channel THREADS PER_THREAD */
int channel_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_thread_t *threads;
  uint64_t i, start;
  chan_producers = arg_u64(argc, argv, 0, "THREADS");
  chan_per_thread = arg_u64(argc, argv, 1, "PER_THREAD");
  chan_total = chan_producers * chan_per_thread;
  threads = calloc(chan_producers, sizeof *threads);
  if (threads == NULL) die("out of memory");
  CHECK(uv_mutex_init(&chan_mutex));
  CHECK(uv_async_init(loop, &chan_async, chan_async_cb));
  start = uv_hrtime();
  for (i = 0; i < chan_producers; i++) CHECK(uv_thread_create(&threads[i], chan_producer, NULL));
  uv_run(loop, UV_RUN_DEFAULT);
  for (i = 0; i < chan_producers; i++) CHECK(uv_thread_join(&threads[i]));
  if (chan_got != chan_total)
    die("%llu of %llu messages delivered", (unsigned long long)chan_got,
        (unsigned long long)chan_total);
  if (chan_last_ns == 0) chan_last_ns = uv_hrtime();
  result("msgs_per_s", (double)chan_total / ((double)(chan_last_ns - start) / 1e9));
  CHECK(uv_loop_close(loop));
  uv_mutex_destroy(&chan_mutex);
  free(chan_shared.items);
  free(chan_local.items);
  free(threads);
  return 0;
}

/* ---- queue_work and fs_stat: keep IN_FLIGHT requests going until N are done ---- */

static uv_loop_t *pool_loop;
static uint64_t submitted, completed, total_jobs;
static const char *stat_path;

static void noop_work(uv_work_t *req) { (void)req; }

static void after_noop(uv_work_t *req, int status) {
  CHECK(status);
  completed++;
  if (submitted < total_jobs) {
    submitted++;
    CHECK(uv_queue_work(pool_loop, req, noop_work, after_noop));
  }
}

static void after_stat(uv_fs_t *req) {
  CHECK((int)req->result);
  uv_fs_req_cleanup(req);
  completed++;
  if (submitted < total_jobs) {
    submitted++;
    CHECK(uv_fs_stat(pool_loop, req, stat_path, after_stat));
  }
}

static int run_pool(int argc, char **argv, int stat) {
  uint64_t in_flight, i, start;
  double elapsed;
  void *reqs;
  pool_loop = uv_default_loop();
  total_jobs = arg_u64(argc, argv, 0, "N");
  in_flight = arg_u64(argc, argv, 1, "IN_FLIGHT");
  if (stat) {
    if (argc < 3) die("missing PATH");
    stat_path = argv[2];
  }
  reqs = calloc(in_flight, stat ? sizeof(uv_fs_t) : sizeof(uv_work_t));
  if (reqs == NULL) die("out of memory");
  start = uv_hrtime();
  for (i = 0; i < in_flight && submitted < total_jobs; i++) {
    submitted++;
    if (stat)
      CHECK(uv_fs_stat(pool_loop, (uv_fs_t *)reqs + i, stat_path, after_stat));
    else
      CHECK(uv_queue_work(pool_loop, (uv_work_t *)reqs + i, noop_work, after_noop));
  }
  uv_run(pool_loop, UV_RUN_DEFAULT);
  elapsed = seconds_since(start);
  if (completed != total_jobs) die("%llu of %llu done", (unsigned long long)completed,
                                   (unsigned long long)total_jobs);
  result(stat ? "stats_per_s" : "jobs_per_s", (double)total_jobs / elapsed);
  CHECK(uv_loop_close(pool_loop));
  free(reqs);
  return 0;
}

/* queue_work N IN_FLIGHT */
int queue_work_main(int argc, char **argv) { return run_pool(argc, argv, 0); }

/* fs_stat N IN_FLIGHT PATH */
int fs_stat_main(int argc, char **argv) { return run_pool(argc, argv, 1); }
