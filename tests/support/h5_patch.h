// Crafting corrupt HDF5 files for tests: overwrite elements of a dataset in
// place, or find a chunk's bytes in the file to flip one.
#pragma once

#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

namespace longrec::testing {

// Writes `count` values of `type` at [begin, begin + count) of a 1-D dataset;
// false when any HDF5 call fails. Chunk checksums are recomputed by HDF5.
inline bool patch_elements(const std::filesystem::path& file, const std::string& dataset, hsize_t begin,
                           const void* values, hsize_t count, hid_t type) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return false;
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  const hid_t space = d >= 0 ? H5Dget_space(d) : -1;
  const hid_t memory = H5Screate_simple(1, &count, nullptr);
  bool ok = d >= 0 && space >= 0 && memory >= 0 &&
            H5Sselect_hyperslab(space, H5S_SELECT_SET, &begin, nullptr, &count, nullptr) >= 0 &&
            H5Dwrite(d, type, memory, space, H5P_DEFAULT, values) >= 0;
  if (memory >= 0) H5Sclose(memory);
  if (space >= 0) H5Sclose(space);
  if (d >= 0) ok = H5Dclose(d) >= 0 && ok;
  return H5Fclose(f) >= 0 && ok;
}

// Flips one byte in the middle of the stored (compressed) bytes of chunk
// `index` of a chunked dataset, behind HDF5's back; false when not found.
inline bool flip_chunk_byte(const std::filesystem::path& file, const std::string& dataset, hsize_t index = 0) {
  haddr_t address = HADDR_UNDEF;
  hsize_t size = 0;
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return false;
    const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
    hsize_t offset = 0;
    unsigned mask = 0;
    if (d >= 0) {
      const hid_t space = H5Dget_space(d);
      if (H5Dget_chunk_info(d, space, index, &offset, &mask, &address, &size) < 0) address = HADDR_UNDEF;
      H5Sclose(space);
      H5Dclose(d);
    }
    H5Fclose(f);
  }
  if (address == HADDR_UNDEF || size == 0) return false;
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(address + size / 2));
  char byte = 0;
  io.get(byte);
  io.seekp(static_cast<std::streamoff>(address + size / 2));
  io.put(static_cast<char>(byte ^ 0x5A));
  return static_cast<bool>(io);
}

}  // namespace longrec::testing
