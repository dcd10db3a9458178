/* spawn: spawn-and-wait of /bin/true with uv_spawn, IN_FLIGHT at a time until N have exited. */
#include "uvbench.h"

static uv_loop_t *spawn_loop;
static uint64_t spawned, exited, total;

static void start_one(uv_process_t *proc);

static void spawn_close_cb(uv_handle_t *handle) {
  uv_process_t *proc = (uv_process_t *)handle;
  if (spawned < total) start_one(proc);
}

static void spawn_exit_cb(uv_process_t *proc, int64_t status, int signal) {
  if (status != 0 || signal != 0) die("/bin/true exited with %d (signal %d)", (int)status, signal);
  exited++;
  uv_close((uv_handle_t *)proc, spawn_close_cb);
}

static void start_one(uv_process_t *proc) {
  static char *args[] = {"/bin/true", NULL};
  uv_process_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.file = args[0];
  opts.args = args;
  opts.exit_cb = spawn_exit_cb;
  spawned++;
  CHECK(uv_spawn(spawn_loop, proc, &opts));
}

/* spawn N IN_FLIGHT */
int spawn_main(int argc, char **argv) {
  uint64_t in_flight, i, start;
  uv_process_t *procs;
  double elapsed;
  spawn_loop = uv_default_loop();
  total = arg_u64(argc, argv, 0, "N");
  in_flight = arg_u64(argc, argv, 1, "IN_FLIGHT");
  procs = calloc(in_flight, sizeof *procs);
  if (procs == NULL) die("out of memory");
  start = uv_hrtime();
  for (i = 0; i < in_flight && spawned < total; i++) start_one(&procs[i]);
  uv_run(spawn_loop, UV_RUN_DEFAULT);
  elapsed = seconds_since(start);
  if (exited != total) die("spawn: %llu of %llu exited", (unsigned long long)exited, (unsigned long long)total);
  result("procs_per_s", (double)total / elapsed);
  free(procs);
  return 0;
}
