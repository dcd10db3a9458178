/* loop_count (an idle handle counts iterations), million_timers, and defer (setImmediate-style
 * deferred calls, or 0 ms timers). */
#include "uvbench.h"

static uint64_t iterations, iterations_target;
static uv_tcp_t listener;
static int with_listener;

static void idle_cb(uv_idle_t *idle) {
  if (++iterations == iterations_target) {
    uv_idle_stop(idle);
    if (with_listener) uv_close((uv_handle_t *)&listener, NULL);
  }
}

static void idle_connection_cb(uv_stream_t *server, int status) {
  (void)server;
  (void)status; /* nobody connects */
}

/* loop_count N [LISTENER]: with LISTENER 1, a TCP listener on 127.0.0.1:0 that nobody
 * connects to is open while the idle handle counts (a loop with a socket to poll). */
int loop_count_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_idle_t idle;
  uint64_t start;
  double elapsed;
  iterations_target = arg_u64(argc, argv, 0, "N");
  with_listener = argc > 1 && arg_u64(argc, argv, 1, "LISTENER") != 0;
  if (with_listener) {
    struct sockaddr_in addr;
    CHECK(uv_ip4_addr("127.0.0.1", 0, &addr));
    CHECK(uv_tcp_init(loop, &listener));
    CHECK(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0));
    CHECK(uv_listen((uv_stream_t *)&listener, BACKLOG, idle_connection_cb));
  }
  CHECK(uv_idle_init(loop, &idle));
  CHECK(uv_idle_start(&idle, idle_cb));
  start = uv_hrtime();
  uv_run(loop, UV_RUN_DEFAULT);
  elapsed = seconds_since(start);
  if (iterations != iterations_target) die("counted %llu iterations", (unsigned long long)iterations);
  result("iterations_per_s", (double)iterations / elapsed);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop));
  return 0;
}

static uint64_t fired;

static void timer_cb(uv_timer_t *timer) {
  (void)timer;
  fired++;
}

/* timers N: N timers, 1,000 per millisecond of timeout (1..N/1000 ms), run out, closed. */
int timers_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uint64_t n = arg_u64(argc, argv, 0, "N");
  uv_timer_t *timers = malloc(n * sizeof *timers);
  uint64_t i, timeout = 0, start, started;
  if (timers == NULL) die("out of memory");
  start = uv_hrtime();
  for (i = 0; i < n; i++) {
    if (i % 1000 == 0) timeout++;
    CHECK(uv_timer_init(loop, &timers[i]));
    CHECK(uv_timer_start(&timers[i], timer_cb, timeout, 0));
  }
  started = uv_hrtime();
  uv_run(loop, UV_RUN_DEFAULT);
  for (i = 0; i < n; i++) uv_close((uv_handle_t *)&timers[i], NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  if (fired != n) die("%llu of %llu timers fired", (unsigned long long)fired, (unsigned long long)n);
  result("starts_per_s", (double)n / ((double)(started - start) / 1e9));
  result("total_ms", seconds_since(start) * 1e3);
  result("peak_rss_kib", (double)status_kib("VmHWM:"));
  CHECK(uv_loop_close(loop));
  free(timers);
  return 0;
}

/* ---- defer: one-shot callbacks on the next iteration ----
 *
 * The way Node implements setImmediate: a queue of pending calls, run by one uv_check_t
 * (unreferenced: it does not keep the loop alive). While the queue is non-empty an active
 * uv_idle_t keeps the loop alive and makes the poll not block. A pass runs the calls queued
 * before it began; calls queued meanwhile wait for the next iteration. */

typedef void (*immediate_fn)(void *arg);

struct immediate {
  immediate_fn fn;
  void *arg;
};

/* The queue being filled, and the one being run (swapped at each check). */
static struct immediate *immediates, *running;
static size_t immediates_len, immediates_cap, running_cap;
static uv_check_t immediate_check;
static uv_idle_t immediate_idle;

static void immediate_idle_cb(uv_idle_t *idle) { (void)idle; }

static void set_immediate(immediate_fn fn, void *arg) {
  if (immediates_len == immediates_cap) {
    immediates_cap = immediates_cap ? immediates_cap * 2 : 1024;
    immediates = realloc(immediates, immediates_cap * sizeof *immediates);
    if (immediates == NULL) die("out of memory");
  }
  immediates[immediates_len].fn = fn;
  immediates[immediates_len].arg = arg;
  if (immediates_len++ == 0) CHECK(uv_idle_start(&immediate_idle, immediate_idle_cb));
}

static void immediate_check_cb(uv_check_t *check) {
  struct immediate *batch = immediates;
  size_t n = immediates_len, cap = immediates_cap, i;
  (void)check;
  immediates = running;
  immediates_cap = running_cap;
  immediates_len = 0;
  running = batch;
  running_cap = cap;
  for (i = 0; i < n; i++) running[i].fn(running[i].arg);
  if (immediates_len == 0) CHECK(uv_idle_stop(&immediate_idle));
}

static uint64_t defer_made, defer_ran, defer_total;

static void deferred_cb(void *arg);

static void defer_next(void) {
  if (defer_made < defer_total) {
    defer_made++;
    set_immediate(deferred_cb, NULL);
  }
}

static void deferred_cb(void *arg) {
  (void)arg;
  defer_ran++;
  defer_next();
}

/* The other case: a malloc'ed uv_timer_t per call, started with 0, closed in its callback
 * and freed in the close callback. */
static void free_handle_cb(uv_handle_t *handle) { free(handle); }

static void timer_next(uv_loop_t *loop);

static void zero_timer_cb(uv_timer_t *timer) {
  uv_close((uv_handle_t *)timer, free_handle_cb);
  defer_ran++;
  timer_next(timer->loop);
}

static void timer_next(uv_loop_t *loop) {
  if (defer_made < defer_total) {
    uv_timer_t *timer = malloc(sizeof *timer);
    if (timer == NULL) die("out of memory");
    defer_made++;
    CHECK(uv_timer_init(loop, timer));
    CHECK(uv_timer_start(timer, zero_timer_cb, 0, 0));
  }
}

/* defer N OUTSTANDING TIMER: N calls, OUTSTANDING at a time, each scheduling the next; with
 * TIMER 1 each call is a 0 ms timer instead of a deferred call. */
int defer_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uint64_t outstanding, i, start;
  double elapsed;
  int timer;
  defer_total = arg_u64(argc, argv, 0, "N");
  outstanding = arg_u64(argc, argv, 1, "OUTSTANDING");
  timer = arg_u64(argc, argv, 2, "TIMER") != 0;
  CHECK(uv_check_init(loop, &immediate_check));
  CHECK(uv_check_start(&immediate_check, immediate_check_cb));
  uv_unref((uv_handle_t *)&immediate_check);
  CHECK(uv_idle_init(loop, &immediate_idle));
  start = uv_hrtime();
  for (i = 0; i < outstanding && i < defer_total; i++) {
    if (timer) {
      timer_next(loop);
    } else {
      defer_next();
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);
  elapsed = seconds_since(start);
  if (defer_ran != defer_total) {
    die("%llu of %llu calls ran", (unsigned long long)defer_ran, (unsigned long long)defer_total);
  }
  result("calls_per_s", (double)defer_total / elapsed);
  uv_close((uv_handle_t *)&immediate_check, NULL);
  uv_close((uv_handle_t *)&immediate_idle, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop));
  free(immediates);
  free(running);
  return 0;
}
