// Giving back the pages of read-only file mappings once their bytes have been copied.
//
// A kernel that converts or re-packs a weight at load (cpu::Linear, cpu::Conv2d) keeps its own copy;
// the mapped file's pages it read would otherwise stay in the process's resident set until the file
// is unmapped, counting the weights twice. release_mapped_pages() drops them (madvise DONTNEED), but
// only for ranges inside a registered read-only file mapping: such pages are re-read from the file
// if anything touches them again, so releasing is always safe. Other memory (heap, inline values
// of a parsed program) is left alone.
#pragma once
#include <cstddef>

namespace sdpal {

// Called by MappedFile for each mapping it creates / removes.
void register_file_mapping(const void* begin, size_t size);
void unregister_file_mapping(const void* begin);

// Drops the whole pages of [p, p + n) if the range lies in a registered mapping; else nothing.
// Returns the bytes released (whole pages only).
size_t release_mapped_pages(const void* p, size_t n);

}  // namespace sdpal
