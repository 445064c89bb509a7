/*
 * resolve.c - names and addresses: may_resolve (getaddrinfo on the offload
 * pool), the one "host:port" grammar (may_parse_host_port), and the
 * addresses every socket call tries (may__host_port_addrs).
 *
 * Why on the pool.  getaddrinfo blocks (files, NSS modules, DNS over a
 * socket it does not hand out) and has no descriptor the reactor could
 * wait on, so a lookup made on a worker would stop every coroutine queued
 * there.  A name goes to the offload pool (src/offload.c) and the caller
 * parks; a numeric host and port are converted inline first
 * (AI_NUMERICHOST | AI_NUMERICSERV), which never blocks and needs no
 * helper.  This is Go's cgo resolver on an extra thread.
 *
 * Who owns the request.  A lookup may be abandoned (deadline, cancel)
 * while its helper is inside getaddrinfo, so the request is heap memory
 * holding copies of the host and port, never the caller's strings: the
 * pool's drop hook (resolve_drop) frees it when the caller gave up, and the
 * caller frees it otherwise.  Only the first address is kept (no happy
 * eyeballs yet, docs/OFFLOAD.md).
 *
 * One grammar.  Every call that takes "host:port" (TCP, UDP, may_resolve's
 * users) parses it here and turns it into addresses through
 * may__host_port_addrs, so they all accept and refuse the same strings
 * with the same errors.
 * There "localhost" is loopback by rule (RFC 6761), never looked up and
 * never the wildcard: a listener meant for loopback must not be reachable
 * from the network.  ":port" is the wildcard only for a passive socket
 * (listen, bind).  may_resolve itself is the system resolver as it is, and
 * looks "localhost" up like any name (may.h).
 *
 * Errors: getaddrinfo's EAI_* codes become negative errno values
 * (gai_errno, the table in docs/OFFLOAD.md and may.h).
 *
 * Lock order and memory ordering: this file has no lock and no shared
 * state of its own.  The helper writes the request's answer before the
 * pool claims the job (release) and wakes the caller, whose wait reads the
 * claim with acquire, so the caller sees the answer (src/offload.c).
 */
#include "internal.h"

#include <string.h>
#include <strings.h>

#include "sock.h" /* getaddrinfo, inet_pton: <netdb.h>, or Winsock */

/* getaddrinfo's EAI_* codes as negative errno values (documented in may.h). */
static int gai_errno(int rc, int sys_errno)
{
    (void)sys_errno; /* used for EAI_SYSTEM, which Windows lacks */
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_SERVICE:
        return -ENOENT;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return -ENODATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return -ENODATA;
#endif
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
#ifdef ESOCKTNOSUPPORT
        return -ESOCKTNOSUPPORT;
#else
        return -EPROTONOSUPPORT; /* MinGW's errno.h has no ESOCKTNOSUPPORT */
#endif
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_BADFLAGS:
        return -EINVAL;
#ifdef EAI_OVERFLOW
    case EAI_OVERFLOW:
        return -ENAMETOOLONG;
#endif
#ifdef EAI_SYSTEM
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
#endif
    default:
        return -EIO;
    }
}

#define HOST_MAX 1024 /* NI_MAXHOST - 1 */
#define PORT_MAX 64

typedef struct resolve_req {
    struct addrinfo hints;
    int rc; /* negative errno or 0 */
    socklen_t len;
    struct sockaddr_storage addr;
    const char *host, *port; /* into strs; NULL for none */
    char strs[];
} resolve_req;

/* getaddrinfo, keeping the first address.  0 or -errno. */
static int gai_first(resolve_req *q)
{
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(q->host, q->port, &q->hints, &ai);
    int e = errno;
    if (rc != 0)
        return gai_errno(rc, e);
    if (!ai || ai->ai_addrlen > sizeof q->addr) {
        freeaddrinfo(ai);
        return -ENODATA;
    }
    memcpy(&q->addr, ai->ai_addr, ai->ai_addrlen);
    q->len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void *resolve_job(void *arg)
{
    resolve_req *q = arg;
    q->rc = gai_first(q);
    return NULL;
}

static void resolve_drop(void *arg, void *result, bool ran)
{
    (void)result;
    (void)ran;
    free(arg);
}

int may_resolve(const char *host, const char *port, int family, int socktype,
                struct sockaddr_storage *out, socklen_t *outlen, int64_t deadline)
{
    if (!out || (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return -EINVAL;
    if (host && !*host)
        host = NULL;
    if (port && !*port)
        port = NULL;
    if (!host && !port)
        return -EINVAL;
    int r = may__sock_startup(); /* Windows: WSAStartup before getaddrinfo */
    if (r < 0)
        return r;
    size_t hl = host ? strlen(host) : 0, pl = port ? strlen(port) : 0;
    if (hl > HOST_MAX || pl > PORT_MAX)
        return -ENAMETOOLONG;
    resolve_req *q = malloc(sizeof *q + hl + pl + 2);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof *q);
    memcpy(q->strs, host ? host : "", hl + 1);
    memcpy(q->strs + hl + 1, port ? port : "", pl + 1);
    q->host = host ? q->strs : NULL;
    q->port = port ? q->strs + hl + 1 : NULL;
    q->hints.ai_family = family;
    q->hints.ai_socktype = socktype;
    q->hints.ai_flags = host ? 0 : AI_PASSIVE;

    /* Numeric host and port: no lookup, so no helper. */
    q->hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    r = gai_first(q);
    q->hints.ai_flags &= ~(AI_NUMERICHOST | AI_NUMERICSERV);
    if (r == -ENOENT) {
        /* A name to look up: on the pool.  On failure the drop hook owns q. */
        r = may_offload_ex(resolve_job, q, NULL, resolve_drop, deadline);
        if (r < 0)
            return r;
        r = q->rc;
    }
    if (r == 0) {
        *out = q->addr;
        if (outlen)
            *outlen = q->len;
    }
    free(q);
    return r;
}

/* The one grammar of "host:port" (may.h): "host:port", "[v6addr]:port" or
 * ":port".  Every call that takes an address comes through here (through
 * may__host_port_addrs below), so they all accept and refuse the same
 * strings with the same errors. */
int may_parse_host_port(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    if (!s || !host || !port || !hostlen || !portlen)
        return -EINVAL;
    const char *h, *he, *pp;
    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':')
            return -EINVAL;
        if (he == h || memchr(h, '[', (size_t)(he - h)))
            return -EINVAL;
        pp = he + 2;
    } else {
        h = s;
        he = strchr(s, ':');
        if (!he)
            return -EINVAL; /* missing port */
        pp = he + 1;
        if (strchr(pp, ':'))
            return -EINVAL; /* too many colons: an IPv6 address needs [] */
        if (memchr(h, '[', (size_t)(he - h)) || memchr(h, ']', (size_t)(he - h)))
            return -EINVAL;
    }
    if (!*pp || strpbrk(pp, "[]:"))
        return -EINVAL;
    size_t hl = (size_t)(he - h), pl = strlen(pp);
    if (hl >= hostlen || pl >= portlen)
        return -ENAMETOOLONG;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, pp, pl + 1);
    return 0;
}

/* "localhost" names loopback (RFC 6761, section 6.3): recognised here, not
 * looked up, so neither /etc/hosts nor a DNS answer can point it elsewhere,
 * and no helper thread is needed. */
static int host_is_localhost(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.") == 0;
}

/* The address `numeric` (a literal of family fam) with the port of `like`. */
static void addr_with_port(const char *numeric, int fam, const struct sockaddr_storage *like,
                           struct sockaddr_storage *out, socklen_t *len)
{
    uint16_t port = like->ss_family == AF_INET ? ((const struct sockaddr_in *)like)->sin_port
                                               : ((const struct sockaddr_in6 *)like)->sin6_port;
    memset(out, 0, sizeof *out);
    if (fam == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = port;
        inet_pton(AF_INET, numeric, &s4->sin_addr);
        *len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
        inet_pton(AF_INET6, numeric, &s6->sin6_addr);
        *len = sizeof *s6;
    }
}

/* See internal.h.  The two-address cases ("localhost", ":port") are fixed
 * literals: loopback IPv4 first (what Go's net.Listen("tcp",
 * "localhost:0") binds), then IPv6; the wildcard IPv6 first (dual stack, so
 * it covers IPv4 too), then IPv4.  The port is resolved once, with the
 * first address; a service name goes to the pool like a host name. */
int may__host_port_addrs(const char *hp, int family, int socktype, bool passive, may__addrs *out,
                         int64_t deadline)
{
    char host[HOST_MAX + 1], port[PORT_MAX + 1];
    out->n = 0;
    int r = may_parse_host_port(hp, host, sizeof host, port, sizeof port);
    if (r < 0)
        return r;
    if (host[0] && !host_is_localhost(host)) {
        r = may_resolve(host, port, family, socktype, &out->addr[0], &out->len[0], deadline);
        out->n = r == 0;
        return r;
    }
    static const char *const loopback[2] = { "127.0.0.1", "::1" }, *const any[2] = { "::", "0.0.0.0" };
    const char *const *lit = !host[0] && passive ? any : loopback;
    for (int i = 0; i < 2; i++) {
        int fam = strchr(lit[i], ':') ? AF_INET6 : AF_INET;
        if (family != AF_UNSPEC && family != fam)
            continue;
        if (out->n == 0) {
            r = may_resolve(lit[i], port, fam, socktype, &out->addr[0], &out->len[0], deadline);
            if (r < 0)
                return r;
        } else {
            addr_with_port(lit[i], fam, &out->addr[0], &out->addr[1], &out->len[1]);
        }
        out->n++;
    }
    return 0;
}
