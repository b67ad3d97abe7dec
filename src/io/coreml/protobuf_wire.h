// A minimal reader of the protobuf wire format (varint, 64-bit, length-delimited, 32-bit fields),
// enough to decode the few Core ML messages we need without a protobuf library. Every length
// and varint is checked against the buffer; errors name the source file, message and byte offset.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.h"

namespace sdpal::coreml {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class WireReader {
 public:
  // `source` must outlive the reader; `base` is the offset of p in the whole buffer (for messages).
  WireReader(const uint8_t* p, size_t n, const std::string& source, const char* message, size_t base = 0)
      : p_(p), n_(n), source_(&source), message_(message), base_(base) {}

  // Reads the next tag; false at the end of the message.
  bool next() {
    if (pos_ >= n_) return false;
    const size_t at = pos_;
    const uint64_t tag = varint();
    const uint64_t wt = tag & 7;
    field_ = tag >> 3;
    if (field_ == 0 || field_ > 0x1fffffff) error(at, "invalid field number " + std::to_string(field_));
    if (wt != 0 && wt != 1 && wt != 2 && wt != 5) error(at, "unsupported wire type " + std::to_string(wt));
    type_ = WireType(wt);
    return true;
  }
  uint64_t field() const { return field_; }
  WireType type() const { return type_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= n_) error(pos_, "truncated varint");
      const uint8_t b = p_[pos_++];
      if (shift == 63 && b > 1) error(pos_ - 1, "varint overflows 64 bits");
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    error(pos_, "varint longer than 10 bytes");
  }
  uint32_t fixed32() {
    need(4, "truncated 32-bit field");
    uint32_t v;
    std::memcpy(&v, p_ + pos_, 4);
    pos_ += 4;
    return v;
  }
  uint64_t fixed64() {
    need(8, "truncated 64-bit field");
    uint64_t v;
    std::memcpy(&v, p_ + pos_, 8);
    pos_ += 8;
    return v;
  }
  // A length-delimited field's bytes.
  std::string_view bytes() {
    const size_t at = pos_;
    const uint64_t len = varint();
    if (len > n_ - pos_) error(at, "length " + std::to_string(len) + " runs past the end of the message");
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  // A nested message.
  WireReader message(const char* name) {
    const std::string_view b = bytes();
    const size_t off = size_t(reinterpret_cast<const uint8_t*>(b.data()) - p_);
    return WireReader(reinterpret_cast<const uint8_t*>(b.data()), b.size(), *source_, name, base_ + off);
  }
  // Field value checked to have `want` wire type.
  void expect(WireType want) {
    if (type_ != want)
      error(pos_, "field " + std::to_string(field_) + " has wire type " + std::to_string(int(type_)) + ", expected " +
                      std::to_string(int(want)));
  }
  void skip() {
    switch (type_) {
      case WireType::kVarint: varint(); break;
      case WireType::kFixed64: need(8, "truncated 64-bit field"); pos_ += 8; break;
      case WireType::kFixed32: need(4, "truncated 32-bit field"); pos_ += 4; break;
      case WireType::kLen: bytes(); break;
    }
  }
  std::string string_field() {
    expect(WireType::kLen);
    return std::string(bytes());
  }
  uint64_t varint_field() {
    expect(WireType::kVarint);
    return varint();
  }

  [[noreturn]] void error(size_t at, const std::string& msg) const {
    fail(ErrorCode::kFormat, *source_ + ": protobuf " + message_ + " at byte " + std::to_string(base_ + at) + ": " + msg);
  }
  const std::string& source() const { return *source_; }
  size_t offset() const { return base_ + pos_; }

 private:
  void need(size_t k, const char* msg) {
    if (n_ - pos_ < k) error(pos_, msg);
  }

  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string* source_;
  const char* message_;
  size_t base_;
  uint64_t field_ = 0;
  WireType type_ = WireType::kVarint;
};

}  // namespace sdpal::coreml
