/* The stream servers (echo, pump) over TCP and over Unix domain sockets (uv_pipe_t), and the
 * tcp_write_batch writer. Every server reads into one static 64 KiB buffer, writes what the
 * socket takes at once (uv_try_write) and queues only the rest, stops reading while 64 KiB
 * or more are queued and resumes once the queue is empty, and sets TCP_NODELAY on accepted
 * TCP connections: the same policy as the evloop and tokio servers. The callbacks take a
 * uv_stream_t and serve both kinds; only the accept differs. */
#include <stddef.h>

#include "uvbench.h"

typedef struct {
  int paused;
  /* Allocated only as large as the kind accepted (a uv_pipe_t is 16 bytes larger), so that
   * a TCP connection costs what it did before pipes were served. */
  union {
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
} conn_t;

/* The connection a stream handle belongs to. */
#define CONN(stream) ((conn_t *)((char *)(stream) - offsetof(conn_t, h)))

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_pipe_t pipe_server;
/* One per thread: the echo_server_threads workload runs a loop per thread. */
static _Thread_local char read_buf[64 * 1024];

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  buf->base = read_buf;
  buf->len = sizeof read_buf;
}

static void free_cb(uv_handle_t *handle) { free(CONN(handle)); }

static void close_conn(uv_stream_t *stream) {
  if (!uv_is_closing((uv_handle_t *)stream)) uv_close((uv_handle_t *)stream, free_cb);
}

/* Accepts a connection of the listener's kind; NULL if the accept failed. */
static conn_t *accept_conn(uv_stream_t *listener) {
  int is_pipe = listener->type == UV_NAMED_PIPE;
  conn_t *conn =
      calloc(1, offsetof(conn_t, h) + (is_pipe ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t)));
  if (conn == NULL) die("out of memory");
  if (is_pipe)
    CHECK(uv_pipe_init(listener->loop, &conn->h.pipe, 0));
  else
    CHECK(uv_tcp_init(listener->loop, &conn->h.tcp));
  if (uv_accept(listener, &conn->h.stream) < 0) {
    uv_close((uv_handle_t *)&conn->h.stream, free_cb);
    return NULL;
  }
  if (!is_pipe) uv_tcp_nodelay(&conn->h.tcp, 1);
  return conn;
}

/* ---- echo ---- */

static uint64_t accepted, report_after;
static long rss_before_kib;
static uv_timer_t report_timer;

static void echo_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void echo_write_cb(uv_write_t *req, int status) {
  uv_stream_t *stream = req->handle;
  conn_t *conn = CONN(stream);
  free(req);
  if (uv_is_closing((uv_handle_t *)stream)) return;
  if (status < 0) {
    close_conn(stream);
    return;
  }
  if (conn->paused && uv_stream_get_write_queue_size(stream) == 0) {
    conn->paused = 0;
    if (uv_read_start(stream, alloc_cb, echo_read_cb) < 0) close_conn(stream);
  }
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)status;
  close_conn(req->handle);
  free(req);
}

static void echo_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  conn_t *conn = CONN(stream);
  if (nread > 0) {
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    ssize_t sent = 0;
    int r = uv_try_write(stream, &out, 1);
    uv_write_t *req;
    if (r == nread) return;
    if (r > 0) {
      sent = r;
    } else if (r != UV_EAGAIN) {
      close_conn(stream);
      return;
    }
    /* Queue the rest: the request and a copy of the bytes in one allocation. */
    req = malloc(sizeof *req + (size_t)(nread - sent));
    if (req == NULL) die("out of memory");
    memcpy(req + 1, buf->base + sent, (size_t)(nread - sent));
    out = uv_buf_init((char *)(req + 1), (unsigned)(nread - sent));
    if (uv_write(req, stream, &out, 1, echo_write_cb) < 0) {
      free(req);
      close_conn(stream);
      return;
    }
    if (uv_stream_get_write_queue_size(stream) >= HIGH_WATER_MARK) {
      conn->paused = 1;
      uv_read_stop(stream);
    }
  } else if (nread == UV_EOF) {
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL) die("out of memory");
    uv_read_stop(stream);
    if (uv_shutdown(req, stream, shutdown_cb) < 0) {
      free(req);
      close_conn(stream);
    }
  } else if (nread < 0) {
    close_conn(stream);
  }
}

static void report_cb(uv_timer_t *timer) {
  long now = status_kib("VmRSS:");
  result("connections", (double)accepted);
  result("rss_per_conn_bytes", (double)(now - rss_before_kib) * 1024.0 / (double)accepted);
  uv_close((uv_handle_t *)timer, NULL);
}

static void echo_connection_cb(uv_stream_t *listener, int status) {
  conn_t *conn;
  if (status < 0) return;
  conn = accept_conn(listener);
  if (conn == NULL) return;
  if (uv_read_start(&conn->h.stream, alloc_cb, echo_read_cb) < 0) {
    close_conn(&conn->h.stream);
    return;
  }
  if (++accepted == report_after) {
    /* Let every connection settle (read interest registered), then measure. */
    CHECK(uv_timer_init(loop, &report_timer));
    CHECK(uv_timer_start(&report_timer, report_cb, 100, 0));
  }
}

/* Runs the echo server, listening already; with N > 0, prints the resident memory per
 * connection once N are open. */
static int echo_serve(uint64_t n) {
  report_after = n;
  uv_run(loop, UV_RUN_NOWAIT);
  rss_before_kib = status_kib("VmRSS:");
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

/* echo_server [N] */
int echo_server_main(int argc, char **argv) {
  loop = uv_default_loop();
  listen_local(loop, &server, echo_connection_cb);
  return echo_serve(argc > 0 ? arg_u64(argc, argv, 0, "N") : 0);
}

/* unix_echo_server PATH [N] */
int unix_echo_server_main(int argc, char **argv) {
  loop = uv_default_loop();
  if (argc < 1) die("missing argument PATH");
  listen_pipe(loop, &pipe_server, argv[0], echo_connection_cb);
  return echo_serve(argc > 1 ? arg_u64(argc, argv, 1, "N") : 0);
}

/* ---- echo on several threads, one loop and one SO_REUSEPORT listener each ---- */

static void echo_thread_connection_cb(uv_stream_t *listener, int status) {
  conn_t *conn;
  if (status < 0) return;
  conn = accept_conn(listener);
  if (conn != NULL && uv_read_start(&conn->h.stream, alloc_cb, echo_read_cb) < 0)
    close_conn(&conn->h.stream);
}

typedef struct {
  uv_loop_t loop;
  uv_tcp_t server;
} echo_thread_t;

/* libuv 1.44 has no UV_TCP_REUSEPORT: create the socket first (uv_tcp_init_ex), set the
 * option on its descriptor, then bind. */
static int listen_reuseport(echo_thread_t *t, int port) {
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound, on = 1;
  uv_os_fd_t fd;
  CHECK(uv_loop_init(&t->loop));
  CHECK(uv_ip4_addr("127.0.0.1", port, &addr));
  CHECK(uv_tcp_init_ex(&t->loop, &t->server, AF_INET));
  CHECK(uv_fileno((uv_handle_t *)&t->server, &fd));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) die("SO_REUSEPORT refused");
  CHECK(uv_tcp_bind(&t->server, (const struct sockaddr *)&addr, 0));
  CHECK(uv_listen((uv_stream_t *)&t->server, BACKLOG, echo_thread_connection_cb));
  CHECK(uv_tcp_getsockname(&t->server, (struct sockaddr *)&bound, &len));
  return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void echo_thread_run(void *arg) { uv_run(&((echo_thread_t *)arg)->loop, UV_RUN_DEFAULT); }

/* echo_server_threads THREADS: the echo server on THREADS threads. */
int echo_server_threads_main(int argc, char **argv) {
  uint64_t threads = arg_u64(argc, argv, 0, "THREADS"), i;
  echo_thread_t *ts;
  int port = 0;
  if (threads == 0) die("THREADS must be at least 1");
  ts = calloc(threads, sizeof *ts);
  if (ts == NULL) die("out of memory");
  for (i = 0; i < threads; i++) port = listen_reuseport(&ts[i], port);
  for (i = 1; i < threads; i++) {
    uv_thread_t tid;
    CHECK(uv_thread_create(&tid, echo_thread_run, &ts[i]));
  }
  printf("listening %d\n", port);
  fflush(stdout);
  echo_thread_run(&ts[0]);
  return 0;
}

/* ---- pump: stream 8 KiB writes to every client until it goes away ---- */

static char chunk[8 * 1024];

static void pump(uv_stream_t *stream);

static void pump_write_cb(uv_write_t *req, int status) {
  uv_stream_t *stream = req->handle;
  free(req);
  if (uv_is_closing((uv_handle_t *)stream)) return;
  if (status < 0) {
    close_conn(stream);
    return;
  }
  /* As evloop's on_drain: produce again once everything queued has gone. */
  if (uv_stream_get_write_queue_size(stream) == 0) pump(stream);
}

/* Per chunk, the same work as evloop's `write`: try the socket first (uv_try_write, one
 * write(2), no request, no callback); only if it does not take the whole chunk, queue the
 * rest with uv_write (a request and a callback). uv_try_write returns UV_EAGAIN while
 * anything is queued, so the order is kept. Stop at the high-water mark. The chunk is
 * static, so the queued rest points into it (evloop copies it into its queue). */
static void pump(uv_stream_t *stream) {
  while (uv_stream_get_write_queue_size(stream) < HIGH_WATER_MARK) {
    uv_buf_t buf = uv_buf_init(chunk, sizeof chunk);
    int r = uv_try_write(stream, &buf, 1);
    uv_write_t *req;
    if (r == (int)sizeof chunk) continue;
    if (r < 0 && r != UV_EAGAIN) {
      close_conn(stream);
      return;
    }
    if (r < 0) r = 0;
    req = malloc(sizeof *req);
    if (req == NULL) die("out of memory");
    buf = uv_buf_init(chunk + r, (unsigned)(sizeof chunk - (size_t)r));
    if (uv_write(req, stream, &buf, 1, pump_write_cb) < 0) {
      free(req);
      close_conn(stream);
      return;
    }
  }
}

static void pump_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0) close_conn(stream);
}

static void pump_connection_cb(uv_stream_t *listener, int status) {
  conn_t *conn;
  if (status < 0) return;
  conn = accept_conn(listener);
  if (conn == NULL) return;
  if (uv_read_start(&conn->h.stream, alloc_cb, pump_read_cb) < 0) {
    close_conn(&conn->h.stream);
    return;
  }
  pump(&conn->h.stream);
}

/* pump_server */
int pump_server_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  memset(chunk, 'p', sizeof chunk);
  loop = uv_default_loop();
  listen_local(loop, &server, pump_connection_cb);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

/* unix_pump_server PATH */
int unix_pump_server_main(int argc, char **argv) {
  memset(chunk, 'p', sizeof chunk);
  loop = uv_default_loop();
  if (argc < 1) die("missing argument PATH");
  listen_pipe(loop, &pipe_server, argv[0], pump_connection_cb);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

/* ---- tcp_write_batch: N writes of 13 bytes on one connection, then shutdown ---- */

static uv_tcp_t client;
static uv_connect_t connect_req;
static uv_shutdown_t shutdown_req;
static uint64_t batch_n, batch_bytes, batch_queued, batch_start;
static char message[] = "Hello, World\n"; /* 13 bytes */

/* A queued write: the request and a copy of the bytes the socket did not take. */
typedef struct {
  uv_write_t req;
  size_t len;
  char data[];
} batch_write_t;

static void batch_write_cb(uv_write_t *req, int status) {
  batch_write_t *w = (batch_write_t *)req;
  if (status < 0) die("write: %s", uv_strerror(status));
  batch_bytes += w->len;
  free(w);
}

static void batch_shutdown_cb(uv_shutdown_t *req, int status) {
  uint64_t expected = batch_n * (sizeof message - 1);
  (void)req;
  if (status < 0) die("shutdown: %s", uv_strerror(status));
  if (batch_bytes != expected) die("%llu of %llu bytes written", (unsigned long long)batch_bytes,
                                   (unsigned long long)expected);
  result("total_ms", seconds_since(batch_start) * 1e3);
  result("queued_writes", (double)batch_queued);
  uv_close((uv_handle_t *)&client, NULL);
}

/* The same work per message as evloop's `write` (and Node's): uv_try_write first (no request,
 * no callback); only the part the socket did not take is copied and queued with uv_write,
 * whose callback frees it. Once anything is queued uv_try_write returns UV_EAGAIN, so every
 * later message is queued behind it, in order. */
static void batch_connect_cb(uv_connect_t *req, int status) {
  const size_t len = sizeof message - 1;
  uint64_t i;
  if (status < 0) die("connect: %s", uv_strerror(status));
  batch_start = uv_hrtime();
  for (i = 0; i < batch_n; i++) {
    uv_buf_t buf = uv_buf_init(message, (unsigned)len);
    int r = uv_try_write(req->handle, &buf, 1);
    batch_write_t *w;
    if (r == (int)len) {
      batch_bytes += len;
      continue;
    }
    if (r < 0 && r != UV_EAGAIN) die("write: %s", uv_strerror(r));
    if (r < 0) r = 0;
    batch_bytes += (size_t)r;
    w = malloc(sizeof *w + len - (size_t)r);
    if (w == NULL) die("out of memory");
    w->len = len - (size_t)r;
    memcpy(w->data, message + r, w->len);
    buf = uv_buf_init(w->data, (unsigned)w->len);
    CHECK(uv_write(&w->req, req->handle, &buf, 1, batch_write_cb));
    batch_queued++;
  }
  CHECK(uv_shutdown(&shutdown_req, req->handle, batch_shutdown_cb));
}

/* write_batch PORT N */
int write_batch_main(int argc, char **argv) {
  struct sockaddr_in addr;
  uint64_t port = arg_u64(argc, argv, 0, "PORT");
  batch_n = arg_u64(argc, argv, 1, "N");
  loop = uv_default_loop();
  CHECK(uv_ip4_addr("127.0.0.1", (int)port, &addr));
  CHECK(uv_tcp_init(loop, &client));
  CHECK(uv_tcp_connect(&connect_req, &client, (const struct sockaddr *)&addr, batch_connect_cb));
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop));
  return 0;
}
