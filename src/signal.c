/* signal.c - being written (issue 13). */
#include "internal.h"
