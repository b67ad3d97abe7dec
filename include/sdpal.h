/* sdpal: Stable Diffusion text-to-image on ordinary CPUs. The public C API.
 *
 * Every function returns a status; on failure sdpal_last_error() gives a one-line message naming
 * the file, tensor or argument at fault. No function aborts the process. A context may be used by
 * one thread at a time; separate contexts are independent. */
#ifndef SDPAL_H
#define SDPAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdpal_status {
  SDPAL_OK = 0,
  SDPAL_ERR_INVALID_ARGUMENT = 1,
  SDPAL_ERR_IO = 2,
  SDPAL_ERR_FORMAT = 3,
  SDPAL_ERR_MODEL = 4,
  SDPAL_ERR_CANCELLED = 5,
  SDPAL_ERR_UNSUPPORTED = 6,
  SDPAL_ERR_INTERNAL = 7
} sdpal_status;

typedef struct sdpal_model sdpal_model;

typedef enum sdpal_sampler {
  SDPAL_SAMPLER_DEFAULT = 0, /* the model's own scheduler */
  SDPAL_SAMPLER_PNDM = 1,
  SDPAL_SAMPLER_DDIM = 2,
  SDPAL_SAMPLER_EULER = 3,
  SDPAL_SAMPLER_EULER_A = 4,
  SDPAL_SAMPLER_DPMPP_2M = 5
} sdpal_sampler;

/* Where the noise comes from (see `sdpal generate --help`, --rng). */
typedef enum sdpal_rng {
  SDPAL_RNG_DEFAULT = 0, /* the model's own: torch, or numpy for Core ML resources */
  SDPAL_RNG_TORCH = 1,   /* torch.randn on the CPU (diffusers) */
  SDPAL_RNG_NUMPY = 2,   /* numpy.random.RandomState(seed).randn (Apple's default) */
  SDPAL_RNG_CUDA = 3,    /* torch.randn on an NVIDIA GPU, one draw per batch (diffusers) */
  SDPAL_RNG_NVIDIA = 4   /* Apple's `nvidia` source: the same numbers, one draw per image */
} sdpal_rng;

/* Return non-zero to continue, zero to cancel. step counts finished UNet calls out of total. */
typedef int (*sdpal_progress_fn)(int step, int total, void* user_data);

typedef struct sdpal_generate_params {
  const char* prompt;          /* required, UTF-8 */
  const char* negative_prompt; /* NULL or "" for none */
  int steps;                   /* default 50 */
  float guidance;              /* default 7.5 */
  uint64_t seed;
  int width, height;           /* 0: the model's default */
  int batch;                   /* images, default 1 */
  sdpal_sampler sampler;
  int karras;                  /* DPM-Solver++: Karras sigmas */
  float eta;                   /* DDIM */
  int safety_checker;          /* default 1 */
  sdpal_progress_fn progress;  /* may be NULL */
  void* progress_user_data;
  sdpal_rng rng;               /* default SDPAL_RNG_DEFAULT */
} sdpal_generate_params;

typedef struct sdpal_image {
  int width, height;
  uint8_t* rgb; /* width*height*3 bytes, owned by the result */
  int nsfw;     /* 1: flagged by the safety checker and blacked out */
} sdpal_image;

typedef struct sdpal_result {
  int count;
  sdpal_image* images;
} sdpal_result;

/* Fills p with the defaults above. */
void sdpal_default_params(sdpal_generate_params* p);

typedef enum sdpal_precision {
  SDPAL_PRECISION_F32 = 0,  /* reproduces diffusers' fp32 output */
  SDPAL_PRECISION_BF16 = 1, /* bf16 weights and GEMM inputs, fp32 accumulation (AVX512-BF16/AMX CPUs) */
  SDPAL_PRECISION_AUTO = 2  /* BF16 where the CPU runs it natively, else F32 */
} sdpal_precision;

typedef struct sdpal_model_options {
  int threads;               /* <= 0: all cores */
  int precision;             /* an sdpal_precision value; default SDPAL_PRECISION_F32 (int: any value is safe to pass) */
  int safety_checker;        /* load the safety checker when the model has one (default 1) */
  const char* variant;       /* NULL: plain weight files; "fp16": *.fp16.safetensors first */
  int reduce_memory;         /* 1: prepare each network when its stage starts and give its weights back when the
                                stage ends (peak memory of one stage; slower per image); default 0 */
} sdpal_model_options;

void sdpal_default_model_options(sdpal_model_options* o);

/* Opens a diffusers model folder. threads <= 0: all cores. */
sdpal_status sdpal_model_open(const char* path, int threads, sdpal_model** out);
sdpal_status sdpal_model_open_ex(const char* path, const sdpal_model_options* options, sdpal_model** out);
void sdpal_model_free(sdpal_model* model);

sdpal_status sdpal_generate(sdpal_model* model, const sdpal_generate_params* params, sdpal_result** out);
void sdpal_result_free(sdpal_result* result);

/* Writes an RGB image as PNG with an optional "parameters" text chunk (NULL for none). */
sdpal_status sdpal_write_png(const char* path, const sdpal_image* image, const char* parameters);

/* The last error message of this thread ("" if none). */
const char* sdpal_last_error(void);
const char* sdpal_version(void);

#ifdef __cplusplus
}
#endif
#endif /* SDPAL_H */
