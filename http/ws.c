/* ws.c - TEMPORARY placeholder until the WebSocket side lands (issue 12):
 * every call fails with -ENOSYS.  Replaced by the real implementation. */
#include "http_impl.h"

#include <errno.h>

MAY_API bool may_ws_is_upgrade(const may_http_req_t *req)
{
    (void)req;
    return false;
}
MAY_API int may_ws_upgrade(may_http_req_t *req, may_http_res_t *res, may_ws_t **ws)
{
    (void)req, (void)res, (void)ws;
    return -ENOSYS;
}
MAY_API int may_ws_recv(may_ws_t *ws, may_ws_msg_t *msg, int64_t deadline)
{
    (void)ws, (void)msg, (void)deadline;
    return -ENOSYS;
}
MAY_API int may_ws_send(may_ws_t *ws, int opcode, const void *data, size_t len, int64_t deadline)
{
    (void)ws, (void)opcode, (void)data, (void)len, (void)deadline;
    return -ENOSYS;
}
MAY_API int may_ws_close(may_ws_t *ws, int code, const char *reason, int64_t deadline)
{
    (void)ws, (void)code, (void)reason, (void)deadline;
    return -ENOSYS;
}
MAY_API int may_ws_close_code(const may_ws_t *ws)
{
    (void)ws;
    return 0;
}
