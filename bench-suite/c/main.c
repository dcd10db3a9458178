#include <signal.h>
#include <stdarg.h>

#include "uvbench.h"

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("uvbench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

uint64_t arg_u64(int argc, char **argv, int i, const char *name) {
  char *end;
  unsigned long long v;
  if (i >= argc) die("missing argument %s", name);
  v = strtoull(argv[i], &end, 10);
  if (*argv[i] == '\0' || *end != '\0') die("bad %s: %s", name, argv[i]);
  return (uint64_t)v;
}

void result(const char *key, double value) {
  printf("result %s %.6f\n", key, value);
  fflush(stdout);
}

long status_kib(const char *field) {
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, n) == 0) {
      v = strtol(line + n, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

double seconds_since(uint64_t start_ns) { return (double)(uv_hrtime() - start_ns) / 1e9; }

void listen_local(uv_loop_t *loop, uv_tcp_t *server, uv_connection_cb cb) {
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  CHECK(uv_ip4_addr("127.0.0.1", 0, &addr));
  CHECK(uv_tcp_init(loop, server));
  CHECK(uv_tcp_bind(server, (const struct sockaddr *)&addr, 0));
  CHECK(uv_listen((uv_stream_t *)server, BACKLOG, cb));
  CHECK(uv_tcp_getsockname(server, (struct sockaddr *)&bound, &len));
  printf("listening %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
}

void listen_pipe(uv_loop_t *loop, uv_pipe_t *server, const char *path, uv_connection_cb cb) {
  CHECK(uv_pipe_init(loop, server, 0));
  CHECK(uv_pipe_bind(server, path));
  CHECK(uv_listen((uv_stream_t *)server, BACKLOG, cb));
  printf("listening 0\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*run)(int, char **);
  } commands[] = {
      {"loop_count", loop_count_main}, {"timers", timers_main},
      {"defer", defer_main},
      {"echo_server", echo_server_main}, {"echo_server_threads", echo_server_threads_main},
      {"pump_server", pump_server_main}, {"udp_echo_server", udp_echo_server_main},
      {"write_batch", write_batch_main}, {"waker", waker_main},
      {"channel", channel_main},         {"queue_work", queue_work_main},
      {"fs_stat", fs_stat_main},
      {"spawn", spawn_main},
      {"unix_echo_server", unix_echo_server_main},
      {"unix_pump_server", unix_pump_server_main},
  };
  size_t i;
  if (argc < 2) die("usage: uvbench WORKLOAD ARGS...");
  /* libuv leaves SIGPIPE alone: a write to a peer that has gone would kill the process.
   * Node and Rust programs ignore it; so do we, and get EPIPE instead. */
  signal(SIGPIPE, SIG_IGN);
  /* The pool size is pinned so that the three runtimes get the same (libuv's default). */
  setenv("UV_THREADPOOL_SIZE", "4", 0);
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
  }
  die("unknown workload %s", argv[1]);
  return 2;
}
