// libFuzzer target: weight.bin reader (header, metadata records, the MILBlob walk, typed lookups)
// and palettized decoding of whatever the blobs hold. Any exception other than sdpal::Error is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/palettized.h"
#include "io/coreml/blob_storage.h"

using namespace sdpal;
using namespace sdpal::coreml;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into a 64-byte aligned buffer, as a memory mapping would be.
  auto buf = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(::operator new(size + 1, std::align_val_t(64))),
                                      [](uint8_t* p) { ::operator delete(p, std::align_val_t(64)); });
  if (size) std::memcpy(buf.get(), data, size);
  try {
    BlobStorage s(buf.get(), size, buf, "fuzz.bin");
    std::vector<uint64_t> offs;
    try {
      offs = s.offsets();
    } catch (const Error&) {
    }
    // Offsets named by the input itself (the header's reserved bytes), as a program would.
    for (int i = 0; i < 4 && size >= 64; ++i) {
      uint64_t o;
      std::memcpy(&o, data + 8 + 8 * i, 8);
      offs.push_back(o % (size + 128));
    }
    for (uint64_t o : offs) {
      try {
        const BlobView b = s.blob(o);
        const MilDType dt = blob_dtype_to_mil(b.dtype);
        s.blob_for(o, dt, b.num_elements(), "x");
        // Interpret the blob as packed indices with a 64-entry table taken from the file head.
        if (size >= 128 && b.nbytes > 0) {
          PalettizedView v;
          v.name = "fuzz";
          static const int kBits[6] = {1, 2, 3, 4, 6, 8};
          v.nbits = kBits[data[8] % 6];
          const int64_t n = int64_t(b.nbytes * 8 / uint64_t(v.nbits));
          const int64_t cols = 1 + data[9] % 8;
          v.shape = {n / cols, cols};
          v.indices = b.data;
          v.indices_nbytes = size_t((v.numel() * v.nbits + 7) / 8);
          v.lut = data;
          v.lut_shape = {int64_t(1) << v.nbits};
          v.lut_dtype = DType::F16;
          v.lut_nbytes = size_t(2) << v.nbits;
          if (v.lut_nbytes <= size) {
            std::vector<float> out(size_t(v.numel() < 4096 ? v.numel() : 4096));
            decode_palettized(v, 0, int64_t(out.size()), out.data());
          }
        }
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
