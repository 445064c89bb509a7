/*
 * floor.c - the least a server on the socket API can do per request, as a
 * yardstick for bench/http.sh and bench/echo.sh (server "floor"): what the
 * kernel costs alone.  Never part of the library, its examples or its tests.
 *
 * One thread per worker (FLOOR_WORKERS, default 1), each with its own
 * SO_REUSEPORT listener and edge-triggered epoll set.  Per readable event:
 * one recv of FLOOR_BUF bytes (default 16384, at most 65536), then one send:
 *   http  every "\r\n\r\n" in what was read counts as a request (no
 *         parsing, no routing: wrk sends nothing else, and a request split
 *         across reads is not handled), and the canned 200 responses for
 *         all of them go out together; the Date header is a constant;
 *   echo  the bytes read go back.
 * A short read means the socket is drained, so no recv ever returns EAGAIN.
 * So a request costs a recv, a send and a share of an epoll_wait and
 * nothing else: a runtime that makes more system calls or does more work
 * per request shows above it.
 *
 *   usage: floor http|echo PORT SECONDS   (127.0.0.1; exits after SECONDS)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\nServer: floor\r\n"
                           "Date: Thu, 26 Nov 2026 12:00:00 GMT\r\n"
                           "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static int port, echo_mode;
static size_t bufsize = 16384; /* FLOOR_BUF: the most one recv asks for */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0)
        die("bind/listen");
    return fd;
}

static void *worker(void *arg)
{
    (void)arg;
    int lfd = listener(), ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static __thread char in[65536], out[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = { .events = EPOLLIN | EPOLLET, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(fd, in, bufsize, 0);
                if (r <= 0) {
                    if (r == 0 || errno != EAGAIN)
                        close(fd);
                    break;
                }
                const char *reply = in;
                size_t len = (size_t)r;
                if (!echo_mode) {
                    size_t reqs = 0;
                    for (ssize_t k = 3; k < r; k++)
                        if (in[k] == '\n' && in[k - 1] == '\r' && in[k - 2] == '\n' &&
                            in[k - 3] == '\r')
                            reqs++;
                    len = 0;
                    for (size_t q = 0; q < reqs && len + sizeof RESP <= sizeof out; q++) {
                        memcpy(out + len, RESP, sizeof RESP - 1);
                        len += sizeof RESP - 1;
                    }
                    reply = out;
                }
                if (len && send(fd, reply, len, MSG_NOSIGNAL) != (ssize_t)len) {
                    close(fd);
                    break;
                }
                if ((size_t)r < bufsize)
                    break; /* short read: drained; the next data is a new edge */
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "http") != 0 && strcmp(argv[1], "echo") != 0)) {
        fprintf(stderr, "usage: %s http|echo PORT SECONDS\n", argv[0]);
        return 2;
    }
    echo_mode = strcmp(argv[1], "echo") == 0;
    port = atoi(argv[2]);
    int secs = atoi(argv[3]);
    const char *b = getenv("FLOOR_BUF");
    if (b && (atol(b) < 1 || atol(b) > 65536)) {
        fprintf(stderr, "floor: FLOOR_BUF must be 1..65536\n");
        return 2;
    }
    bufsize = b ? (size_t)atol(b) : bufsize;
    const char *w = getenv("FLOOR_WORKERS");
    int nw = w ? atoi(w) : 1;
    for (int i = 0; i < (nw > 0 ? nw : 1); i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0)
            die("pthread_create");
    }
    sleep((unsigned)secs);
    return 0;
}
