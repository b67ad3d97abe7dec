// Original single-file Stable Diffusion checkpoints (.ckpt/.pt/.bin): torch.save's zip format,
// `<prefix>/data.pkl` plus one `<prefix>/data/<key>` entry per storage. The pickle is read by the
// restricted unpickler (pickle.h) with torch's meaning given to a short allowlist only:
// collections.OrderedDict, torch._utils._rebuild_tensor(_v2), torch._utils._rebuild_parameter
// (_with_state) and the typed storage classes (torch.FloatStorage, ...). Nothing is executed.
#pragma once
#include <memory>
#include <string>

#include "io/tensor_file.h"

namespace sdpal {

// The flat state dict: the top-level "state_dict" entry when it is a dict (as Lightning-trained
// SD checkpoints have it), else the top-level dict itself; non-tensor values are skipped.
// Views point into the mapped archive (or into inflated copies of compressed storages).
// With verify_crc every storage's CRC-32 is checked at open (one pass over the file).
// Throws Error(kUnsupported) for the legacy non-zip torch format, non-little-endian archives
// and unsupported pickle opcodes; Error(kFormat) naming the file (and tensor or global) for
// disallowed globals, non-contiguous tensors, out-of-range storage offsets or sizes.
std::unique_ptr<TensorFile> open_pickle_checkpoint(const std::string& path, bool verify_crc = true);

}  // namespace sdpal
