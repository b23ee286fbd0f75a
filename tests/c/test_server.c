/* cel_server over real loopback sockets: graceful stop takes the connections
 * the kernel already queued, close_idle spares a connection whose request is
 * waiting unread or that has not sent its first request, responses after
 * stop_accepting carry "connection: close", accept_batch bounds accepts per
 * readiness event, a connection closed by a callback while its own event
 * waits in the same poll batch is skipped, not touched after free. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "test.h"

typedef struct {
    int requests;
    cel_server *srv;
    cel_conn *last;             /* the connection of the latest request */
    cel_conn *victims[2];       /* kill mode: the first request closes the other one */
    int kill;
} ctx;

static int on_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    (void)req;
    ctx *x = ud;
    x->requests++;
    x->last = c;
    if (x->kill) {
        x->kill = 0;
        cel_server_close(x->srv, c == x->victims[0] ? x->victims[1] : x->victims[0]);
    }
    cel_conn_response_start(c, 200, NULL, 0, cel_server_date());
    cel_conn_response_body(c, "ok", 2, 0);
    cel_server_response_done(x->srv, c);
    return 0;
}

static cel_server *make(ctx *x, int batch, int *port)
{
    cel_server_config cfg;
    cel_server_config_default(&cfg);
    if (batch)
        cfg.accept_batch = batch;
    cel_server_callbacks cb = { .ud = x, .on_request = on_request };
    cel_server *s = cel_server_new(&cfg, &cb);
    x->srv = s;
    x->requests = 0;
    x->last = NULL;
    x->kill = 0;
    CHECK(s != NULL);
    CHECK_EQ_INT(cel_server_listen_tcp(s, "127.0.0.1", 0), 0);
    *port = cel_server_bound_port(s);
    return s;
}

static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);   /* completes in the backlog */
    return fd;
}

static void send_str(int fd, const char *s)
{
    CHECK_EQ_INT((int)write(fd, s, strlen(s)), (int)strlen(s));
}

/* poll the server until the client fd has bytes or EOF (bounded), return what was read */
static size_t drive_and_read(cel_server *s, int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (int i = 0; i < 400; i++) {
        cel_server_poll(s);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 5) == 1) {
            ssize_t n = read(fd, buf + got, cap - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    buf[got] = 0;
    return got;
}

#define REQ "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

TEST(stop_accepting_takes_queued_connections)
{
    ctx x;
    int port;
    cel_server *s = make(&x, 0, &port);
    int a = client(port), b = client(port);        /* never polled: both only queued */
    send_str(a, REQ);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 0);
    cel_server_stop_accepting(s);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 2);
    /* a's request is waiting unread, b has not sent one yet: both stay */
    CHECK_EQ_INT((int)cel_server_close_idle(s), 2);
    char buf[1024];
    drive_and_read(s, a, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(buf, "connection: close\r\n") != NULL);
    CHECK_EQ_INT(x.requests, 1);
    /* a new connection is refused now */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(c, (struct sockaddr *)&sa, sizeof sa) < 0);
    close(c);
    close(a);
    close(b);
    cel_server_free(s);
}

TEST(close_idle_closes_keepalive_connections_only)
{
    ctx x;
    int port;
    cel_server *s = make(&x, 0, &port);
    int a = client(port);
    send_str(a, REQ);
    char buf[1024];
    drive_and_read(s, a, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(buf, "connection: close") == NULL);       /* keep-alive before the stop */
    int b = client(port);
    for (int i = 0; i < 50 && cel_server_num_connections(s) < 2; i++) {
        cel_server_poll(s);
        usleep(1000);
    }
    CHECK_EQ_INT((int)cel_server_num_connections(s), 2);
    cel_server_stop_accepting(s);
    /* a: idle after a response -> closed; b: fresh, nothing sent -> kept */
    CHECK_EQ_INT((int)cel_server_close_idle(s), 1);
    CHECK_EQ_INT((int)read(a, buf, sizeof buf), 0);
    close(a);
    close(b);
    cel_server_free(s);
}

TEST(accept_batch_one_accepts_one_per_event)
{
    ctx x;
    int port;
    cel_server *s = make(&x, 1, &port);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = client(port);
    cel_server_poll(s);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 1);
    cel_server_poll(s);
    cel_server_poll(s);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    cel_server_free(s);
}

/* The app's code, run for one connection's request, closes another whose
 * readiness event is in the same epoll batch (a broadcast whose write fails,
 * say): the batch must skip it, not touch it after free (ASan build). */
TEST(close_of_another_connection_inside_the_batch)
{
    ctx x;
    int port;
    cel_server *s = make(&x, 0, &port);
    int fds[2] = { client(port), client(port) };
    char buf[1024];
    for (int k = 0; k < 2; k++) {               /* learn each one's cel_conn */
        send_str(fds[k], REQ);
        CHECK(drive_and_read(s, fds[k], buf, sizeof buf) > 0);
        x.victims[k] = x.last;
    }
    CHECK(x.victims[0] != x.victims[1]);
    send_str(fds[0], REQ);
    send_str(fds[1], REQ);
    for (int k = 0; k < 2; k++) {               /* both readable before the poll */
        struct pollfd p = { .fd = fds[k], .events = POLLOUT };
        poll(&p, 1, 50);
    }
    usleep(20000);
    x.kill = 1;
    int before = x.requests;
    cel_server_poll(s);
    CHECK_EQ_INT(x.kill, 0);
    CHECK_EQ_INT(x.requests, before + 1);       /* the closed one's request never ran */
    CHECK_EQ_INT((int)cel_server_num_connections(s), 1);
    int answered = 0, closed = 0;
    for (int k = 0; k < 2; k++) {
        struct pollfd p = { .fd = fds[k], .events = POLLIN };
        CHECK_EQ_INT(poll(&p, 1, 1000), 1);
        ssize_t n = read(fds[k], buf, sizeof buf - 1);
        if (n > 0 && strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0)
            answered++;
        else if (n == 0 || (n < 0 && errno == ECONNRESET))
            closed++;
    }
    CHECK_EQ_INT(answered, 1);
    CHECK_EQ_INT(closed, 1);
    int c = client(port);                       /* still serving */
    send_str(c, REQ);
    CHECK(drive_and_read(s, c, buf, sizeof buf) > 0);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    close(c);
    close(fds[0]);
    close(fds[1]);
    cel_server_free(s);
}

/* run_pending's walk ends at the connection that was last when it began.
 * When a callback closes that one while an earlier connection is re-queued
 * behind it (a request dispatched and still running), the walk must still
 * end: before, it took the re-queued connection again and again, forever. */
typedef struct {
    cel_server *srv;
    cel_conn *conns[2];
    int n;
    cel_conn *victim;           /* closed by the next request, then cleared */
} hold_ctx;

static int hold_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    (void)req;
    hold_ctx *x = ud;
    if (x->n < 2 && (x->n == 0 || x->conns[0] != c))
        x->conns[x->n++] = c;
    if (x->victim) {
        cel_conn *v = x->victim;
        x->victim = NULL;
        cel_server_close(x->srv, v);
    }
    cel_header h[1] = { { { "content-length", 14 }, { "2", 1 } } };
    cel_conn_response_start(c, 200, h, 1, cel_server_date());   /* the app still runs */
    return 0;
}

TEST(run_pending_ends_when_its_last_connection_is_closed)
{
    hold_ctx x = { 0 };
    cel_server_config cfg;
    cel_server_config_default(&cfg);
    cel_server_callbacks cb = { .ud = &x, .on_request = hold_request };
    cel_server *s = cel_server_new(&cfg, &cb);
    x.srv = s;
    CHECK_EQ_INT(cel_server_listen_tcp(s, "127.0.0.1", 0), 0);
    int port = cel_server_bound_port(s);
    int a = client(port);
    send_str(a, REQ REQ);                       /* two pipelined requests each */
    for (int i = 0; i < 200 && x.n < 1; i++) {
        cel_server_poll(s);
        usleep(1000);
    }
    int b = client(port);
    send_str(b, REQ REQ);
    for (int i = 0; i < 200 && x.n < 2; i++) {
        cel_server_poll(s);
        usleep(1000);
    }
    CHECK_EQ_INT(x.n, 2);
    /* both first responses finish outside any batch: both connections go on
     * the pending list (their second request is buffered), a then b */
    for (int k = 0; k < 2; k++) {
        cel_conn_response_body(x.conns[k], "ok", 2, 0);
        cel_server_response_done(s, x.conns[k]);
    }
    x.victim = x.conns[1];
    cel_server_run_pending(s);                  /* hung here before the fix */
    CHECK(x.victim == NULL);
    CHECK_EQ_INT((int)cel_server_num_connections(s), 1);
    close(a);
    close(b);
    cel_server_free(s);
}
