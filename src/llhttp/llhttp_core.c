/* Compiles the system's llhttp state machine (Debian node-llhttp sources); nothing vendored. */
#include "llhttp.c"
