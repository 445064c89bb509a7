/* real_mariadb.c - Debian's unmodified MariaDB client library (Connector/C,
 * libmariadb), synchronous API (mysql_real_connect, mysql_query), from 100
 * coroutines on one worker (tests/real/real.h has the harness).
 *
 * Each coroutine opens its own connection and runs
 * SELECT SLEEP(0.1), <i>, and checks that its row is its own (SLEEP
 * returns 0 when it slept the whole time).
 *
 * The server: MAY_TEST_MARIADB_HOST and MAY_TEST_MARIADB_PORT (TCP), else
 * MAY_TEST_MARIADB_SOCK (a Unix socket), with MAY_TEST_MARIADB_USER
 * (default root), MAY_TEST_MARIADB_PASSWORD (default none) and
 * MAY_TEST_MARIADB_DB (default none), as tests/servers/with_server.sh
 * mariadb exports them; none set: skip (77). */
#include <mysql.h>

#include "real.h"

static const char *sock, *host, *user, *password, *db;
static unsigned port;

static int request(int i, char *err, size_t errlen)
{
    MYSQL *m = mysql_init(NULL);
    int rc = -1;
    if (!m) {
        snprintf(err, errlen, "mysql_init: out of memory");
        return -1;
    }
    if (!mysql_real_connect(m, host, user, password, db, port, host ? NULL : sock, 0)) {
        snprintf(err, errlen, "connect: %s", mysql_error(m));
        goto out_close;
    }
    char q[64], want[16];
    snprintf(q, sizeof q, "SELECT SLEEP(0.1), %d", i);
    snprintf(want, sizeof want, "%d", i);
    int64_t t0 = may_now();
    if (mysql_query(m, q) != 0) {
        snprintf(err, errlen, "%s: %s", q, mysql_error(m));
        goto out_close;
    }
    MYSQL_RES *res = mysql_store_result(m);
    int64_t ms = (may_now() - t0) / 1000000;
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (!row || mysql_num_fields(res) != 2 || !row[0] || !row[1])
        snprintf(err, errlen, "%s: no row (%s)", q, mysql_error(m));
    else if (strcmp(row[0], "0") != 0 || strcmp(row[1], want) != 0)
        snprintf(err, errlen, "%s: got '%s', '%s'", q, row[0], row[1]);
    else if (ms < REAL_REQUEST_MS * 9 / 10)
        snprintf(err, errlen, "%s: answered after %lld ms", q, (long long)ms);
    else
        rc = 0;
    mysql_free_result(res);
out_close:
    mysql_close(m);
    return rc;
}

int main(int argc, char **argv)
{
    sock = real_env("MAY_TEST_MARIADB_SOCK", NULL);
    host = real_env("MAY_TEST_MARIADB_HOST", NULL);
    const char *p = real_env("MAY_TEST_MARIADB_PORT", NULL);
    if (!p)
        host = NULL;
    if (!sock && !host) {
        printf("real_mariadb: skipped: no MAY_TEST_MARIADB_HOST/PORT or MAY_TEST_MARIADB_SOCK "
               "(run under tests/servers/with_server.sh mariadb)\n");
        return REAL_SKIP;
    }
    port = p ? (unsigned)atoi(p) : 0;
    user = real_env("MAY_TEST_MARIADB_USER", NULL);
    user = user ? user : "root";
    password = real_env("MAY_TEST_MARIADB_PASSWORD", NULL);
    db = real_env("MAY_TEST_MARIADB_DB", NULL);
    if (mysql_library_init(0, NULL, NULL) != 0) {
        fprintf(stderr, "real_mariadb: mysql_library_init failed\n");
        return 1;
    }
    int rc = real_main(argc, argv, "real_mariadb", request);
    mysql_library_end();
    return rc;
}
