/* A minimal consumer of an installed libmay_http (scripts/install-test.sh):
 * serve one request on a free port and check the answer. */
#include <may_http.h>

#include <stdio.h>
#include <string.h>

static void hello(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)req, (void)arg;
    may_http_respond(res, 200, "text/plain", "installed", 9);
}

int main(void)
{
    int lfd = may_tcp_listen("127.0.0.1:0", 16, 0);
    may_http_server_t *srv;
    if (lfd < 0 || may_http_start(&srv, lfd, &(may_http_config_t){ .handler = hello }) < 0)
        return 1;
    char addr[32], buf[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    int fd = may_tcp_connect(addr, may_deadline_in(5000000000LL));
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (fd < 0 || may_tcp_write_all(fd, req, sizeof req - 1, MAY_FOREVER) < 0)
        return 1;
    ssize_t n = may_tcp_read_full(fd, buf, sizeof buf - 1, may_deadline_in(5000000000LL));
    buf[n > 0 ? n : 0] = '\0';
    may_tcp_close(fd);
    may_http_stop(srv, MAY_FOREVER);
    may_tcp_close(lfd);
    if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) != 0 || !strstr(buf, "\r\n\r\ninstalled")) {
        fprintf(stderr, "http consumer: unexpected answer:\n%s\n", buf);
        return 1;
    }
    printf("libmay_http consumer: ok\n");
    return 0;
}
