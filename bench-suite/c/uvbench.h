/* uvbench: the libuv side of bench-suite. One program, one subcommand per workload; each
 * prints `result KEY VALUE` lines (in-process workloads) or `listening PORT` (servers, which
 * run until the orchestrator kills them). The Rust side (src/rt_evloop.rs, src/rt_tokio.rs)
 * takes the same subcommands and arguments. */
#ifndef UVBENCH_H
#define UVBENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Write queue high-water mark: evloop's default, used by every server here. */
#define HIGH_WATER_MARK (64 * 1024)
/* Listen backlog, the same for the three runtimes. */
#define BACKLOG 1024

#define CHECK(expr)                                                                              \
  do {                                                                                           \
    int check_r_ = (expr);                                                                       \
    if (check_r_ < 0) {                                                                          \
      fprintf(stderr, "uvbench: %s:%d: %s: %s\n", __FILE__, __LINE__, #expr,                    \
              uv_strerror(check_r_));                                                            \
      exit(2);                                                                                   \
    }                                                                                            \
  } while (0)

void die(const char *fmt, ...);
uint64_t arg_u64(int argc, char **argv, int i, const char *name);
void result(const char *key, double value);
/* A field of /proc/self/status in KiB ("VmRSS:", "VmHWM:"), or -1. */
long status_kib(const char *field);
double seconds_since(uint64_t start_ns);

/* Binds 127.0.0.1:0, listens, prints `listening PORT`. */
void listen_local(uv_loop_t *loop, uv_tcp_t *server, uv_connection_cb cb);
/* Binds the Unix socket path (the orchestrator chose it), listens, prints `listening 0`. */
void listen_pipe(uv_loop_t *loop, uv_pipe_t *server, const char *path, uv_connection_cb cb);

int loop_count_main(int argc, char **argv);
int timers_main(int argc, char **argv);
int defer_main(int argc, char **argv);
int echo_server_main(int argc, char **argv);
int echo_server_threads_main(int argc, char **argv);
int pump_server_main(int argc, char **argv);
int udp_echo_server_main(int argc, char **argv);
int write_batch_main(int argc, char **argv);
int waker_main(int argc, char **argv);
int channel_main(int argc, char **argv);
int queue_work_main(int argc, char **argv);
int fs_stat_main(int argc, char **argv);
int spawn_main(int argc, char **argv);
int unix_echo_server_main(int argc, char **argv);
int unix_pump_server_main(int argc, char **argv);

#endif
