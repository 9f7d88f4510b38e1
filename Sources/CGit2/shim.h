#pragma once
#include <git2.h>

// The *_OPTIONS_INIT macros and the variadic git_libgit2_opts do not import into Swift:
// one static inline function each.

static inline int rast_git_clone_options_init(git_clone_options *options) {
    return git_clone_options_init(options, GIT_CLONE_OPTIONS_VERSION);
}
static inline int rast_git_fetch_options_init(git_fetch_options *options) {
    return git_fetch_options_init(options, GIT_FETCH_OPTIONS_VERSION);
}
static inline int rast_git_checkout_options_init(git_checkout_options *options) {
    return git_checkout_options_init(options, GIT_CHECKOUT_OPTIONS_VERSION);
}

/// GIT_OPT_SET_OWNER_VALIDATION: whether repositories owned by another user are refused.
static inline int rast_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}
/// GIT_OPT_SET_SEARCH_PATH: where configuration of `level` (global, XDG, system) is read.
static inline int rast_git_set_search_path(git_config_level_t level, const char *path) {
    return git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, (int)level, path);
}
