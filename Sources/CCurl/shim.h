#pragma once
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one typed
// entry point per argument kind. Callbacks are plain C function pointers.

typedef size_t (*rast_curl_data_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode rast_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rast_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rast_curl_set_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rast_curl_set_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode rast_curl_set_data_callback(CURL *handle, CURLoption option, rast_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}
static inline CURLcode rast_curl_set_xferinfo_callback(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

static inline CURLcode rast_curl_get_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode rast_curl_get_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode rast_curl_get_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode rast_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }
static const size_t RAST_CURL_ERROR_SIZE = CURL_ERROR_SIZE;
/// The libcurl version string (CURLVERSION_NOW is a macro).
static inline const char *rast_curl_version(void) { return curl_version_info(CURLVERSION_NOW)->version; }
