/* lua_sources.h - the keyspace's Lua scripts, embedded from src/keyspace/lua at build time. */
#ifndef EDGEKV_KEYSPACE_LUA_SOURCES_H
#define EDGEKV_KEYSPACE_LUA_SOURCES_H

struct ekv_lua_source {
    const char *name; /* file name without ".lua" */
    const char *body;
};

extern const struct ekv_lua_source ekv_lua_sources[];
extern const unsigned ekv_lua_nsources;

#endif /* EDGEKV_KEYSPACE_LUA_SOURCES_H */
