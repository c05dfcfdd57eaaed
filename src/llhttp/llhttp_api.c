/* Compiles the system's llhttp API wrappers (Debian node-llhttp sources); nothing vendored. */
#include "api.c"
