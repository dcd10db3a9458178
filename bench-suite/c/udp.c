/* The UDP echo server (udp_echo): every datagram goes back to its sender. Reception uses
 * recvmmsg (UV_UDP_RECVMMSG: up to 20 datagrams per system call, into one static buffer of
 * 20 x 64 KiB); each echo is tried at once with uv_udp_try_send and queued with uv_udp_send
 * (a request and a copy of the bytes) only if the socket is full: the same policy as the
 * evloop and tokio servers. */
#include "uvbench.h"

/* libuv reads up to buf->len / 64 KiB datagrams per recvmmsg, 20 at most. */
#define MMSG_WIDTH 20
static char udp_buf[MMSG_WIDTH * 64 * 1024];
static uv_udp_t udp_server;

static void udp_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  buf->base = udp_buf;
  buf->len = sizeof udp_buf;
}

static void udp_send_cb(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static void udp_recv_cb(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  uv_buf_t out;
  uv_udp_send_t *req;
  int r;
  /* The end of a recvmmsg batch (UV_UDP_MMSG_FREE), or nothing more to read. */
  if (addr == NULL || nread < 0) return;
  (void)flags;
  out = uv_buf_init(buf->base, (unsigned)nread);
  r = uv_udp_try_send(handle, &out, 1, addr);
  if (r != UV_EAGAIN) return; /* sent, or failed: UDP drops it either way */
  req = malloc(sizeof *req + (size_t)nread);
  if (req == NULL) die("out of memory");
  memcpy(req + 1, buf->base, (size_t)nread);
  out = uv_buf_init((char *)(req + 1), (unsigned)nread);
  if (uv_udp_send(req, handle, &out, 1, addr, udp_send_cb) < 0) free(req);
}

/* udp_echo_server: binds 127.0.0.1:0, prints `listening PORT`, echoes until killed. */
int udp_echo_server_main(int argc, char **argv) {
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_loop_t *loop = uv_default_loop();
  (void)argc;
  (void)argv;
  CHECK(uv_ip4_addr("127.0.0.1", 0, &addr));
  CHECK(uv_udp_init_ex(loop, &udp_server, AF_INET | UV_UDP_RECVMMSG));
  CHECK(uv_udp_bind(&udp_server, (const struct sockaddr *)&addr, 0));
  if (!uv_udp_using_recvmmsg(&udp_server)) die("recvmmsg not in use");
  CHECK(uv_udp_recv_start(&udp_server, udp_alloc_cb, udp_recv_cb));
  CHECK(uv_udp_getsockname(&udp_server, (struct sockaddr *)&bound, &len));
  printf("listening %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
