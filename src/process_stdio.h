/*
 * process_stdio.h - the parent's ends of a child's stdio, the same on every
 * platform: included once by src/process.c (Linux) and once by
 * src/win/process_win.c (Windows), after each has defined its struct
 * may_process with an `int fd[3]` (-1: none).  Only one of the two files is
 * in a build, so the definitions below exist once.
 */
#ifndef MAY_PROCESS_STDIO_H
#define MAY_PROCESS_STDIO_H

int may_process_stdio(const may_process_t *p, int i)
{
    return p && i >= 0 && i < 3 ? p->fd[i] : -1;
}

int may_process_take_stdio(may_process_t *p, int i)
{
    if (!p || i < 0 || i > 2)
        return -EINVAL;
    int fd = p->fd[i];
    if (fd < 0)
        return -EBADF;
    p->fd[i] = -1;
    return fd;
}

int may_process_close_stdio(may_process_t *p, int i)
{
    int fd = may_process_take_stdio(p, i);
    return fd < 0 ? fd : may_fd_close(fd);
}
#endif
