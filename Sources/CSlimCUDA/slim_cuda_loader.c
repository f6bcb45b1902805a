/*
 * Run-time loading of libslimcuda.so: dlopen, one dlsym per entry point of SLIM_CUDA_FUNCTIONS,
 * and the ABI check. Every failure is one line naming the file, the problem and the remedy.
 */
#include "slim_cuda.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *const remedy = "rebuild it with scripts/build-cuda.sh";

int slim_cuda_api_load(const char *path, slim_cuda_api *api, char *error, size_t error_size) {
    memset(api, 0, sizeof(*api));
    if (error_size > 0) error[0] = '\0';
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        snprintf(error, error_size, "cannot load %s: %s", path, why ? why : "unknown dlopen error");
        return 1;
    }
    const char *missing = NULL;
#define SLIM_CUDA_RESOLVE(ret, name, args)                                            \
    if (missing == NULL) {                                                            \
        void *symbol = dlsym(handle, "slim_cuda_" #name);                             \
        if (symbol == NULL) missing = "slim_cuda_" #name;                             \
        else memcpy(&api->name, &symbol, sizeof(symbol));                             \
    }
    SLIM_CUDA_FUNCTIONS(SLIM_CUDA_RESOLVE)
#undef SLIM_CUDA_RESOLVE
    if (missing != NULL) {
        snprintf(error, error_size, "%s is not a slim-quant CUDA library (no symbol %s); %s", path, missing, remedy);
        dlclose(handle);
        memset(api, 0, sizeof(*api));
        return 1;
    }
    int version = api->abi_version();
    if (version != SLIM_CUDA_ABI_VERSION) {
        snprintf(error, error_size, "%s has CUDA backend ABI version %d, this slim-quant needs %d; %s", path, version,
                 SLIM_CUDA_ABI_VERSION, remedy);
        dlclose(handle);
        memset(api, 0, sizeof(*api));
        return 1;
    }
    api->handle = handle;
    return 0;
}

void slim_cuda_api_unload(slim_cuda_api *api) {
    if (api->handle != NULL) dlclose(api->handle);
    memset(api, 0, sizeof(*api));
}
