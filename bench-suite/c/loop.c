/* loop_count (an idle handle counts iterations) and million_timers. */
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
