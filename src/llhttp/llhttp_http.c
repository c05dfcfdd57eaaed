/* Compiles the system's llhttp HTTP helpers (Debian node-llhttp sources); nothing vendored. */
#include "http.c"
