/* lua_sources.h - the origin Lua scripts, embedded from src/api/lua at build time. */
#ifndef EDGEKV_API_LUA_SOURCES_H
#define EDGEKV_API_LUA_SOURCES_H

struct ekv_lua_source {
    const char *name; /* file name without ".lua" */
    const char *body;
};

extern const struct ekv_lua_source ekv_lua_sources[];
extern const unsigned ekv_lua_nsources;

#endif /* EDGEKV_API_LUA_SOURCES_H */
