/*
 * poll_iocp.h - what the Windows poller backend (poll_iocp.c) offers
 * besides internal.h's poller calls: the error table, Winsock's start, and
 * a count for tests.  The design is the essay at the top of poll_iocp.c
 * and docs/WINDOWS_IO.md.
 */
#ifndef MAY_POLL_IOCP_H
#define MAY_POLL_IOCP_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

/* Windows and Winsock error codes -> the negative errno value libmay's
 * Linux calls return for the same condition (-EIO for what has none). */
int may__win_errno(DWORD err);

/* WSAStartup, once per process (never cleaned up).  0 or -errno. */
int may__wsa_start(void);

/* AFD polls issued and not yet dequeued (tests). */
long may__iocp_inflight(void);

#endif
