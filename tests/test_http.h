/*
 * test_http.h — a raw HTTP/1.1 exchange with a server on 127.0.0.1, for the
 * tests that start `orion serve` (test_serve.c, test_dashboard.c).
 */
#ifndef ORION_TEST_HTTP_H
#define ORION_TEST_HTTP_H

#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends the raw bytes of req to 127.0.0.1:port and reads the reply until
 * the server closes (at most cap - 1 bytes, NUL-terminated). Returns the
 * HTTP status, 0 when the reply has none. */
static inline int raw_http(int port, const char *req, size_t len, char *reply, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (k <= 0) break;
        off += (size_t)k;
    }
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, reply + got, cap - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        if (got == cap - 1) break;
    }
    reply[got] = 0;
    close(fd);
    int code = 0;
    sscanf(reply, "HTTP/1.%*d %d", &code);
    return code;
}

#endif
