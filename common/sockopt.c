/*
 * sockopt.c - implements sockopt.h.
 */
#include "sockopt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int tkv_sock_keepalive(int fd, int seconds)
{
    int on = seconds > 0;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
        return -1;
    if (!on)
        return 0;
    int intvl = seconds / 3 > 0 ? seconds / 3 : 1, cnt = 3;
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
        return -1;
    return 0;
}
