#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace dlwpt {

/// Writes `path` whole or not at all. `write` receives a temporary name in the same folder,
/// unique to this process and call (".<stem>.partial-<host>-<pid>-<n><extension>": the
/// extension stays last for writers that choose the format by it). When `write` returns, the
/// temporary must exist; it is flushed to the disk (fsync), renamed to `path`, and the folder
/// entry is flushed too. When anything fails (the writer throws, the disk is full, fsync or
/// rename fails) the temporary is removed, `path` keeps its old content (or stays absent), and
/// a FileError names `path` and the cause. Concurrent writers of one path never mix their
/// bytes: the last rename wins whole.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& temporary)>& write);

/// `write_atomically` for bytes held in memory, written with checked POSIX calls.
void write_file_atomically(const std::string& path, std::string_view bytes);

/// `write_atomically` for a serializer that writes to a stream (torch::save, TorchScript's
/// Module::save): it writes into memory, the bytes then go to the disk through
/// write_file_atomically. libtorch's zip writer must never meet a failing file: when a write
/// fails it throws, and its destructor then throws again and terminates the process.
void write_serialized_atomically(const std::string& path,
                                 const std::function<void(std::ostream& out)>& serialize);

/// "<host>-<pid>-<n>", different for every call in every process on every host: names for
/// temporary files and folders that concurrent runs on a shared filesystem cannot share.
std::string unique_name_suffix();

/// Flushes a written file or a folder's entries to the disk; throws FileError on failure
/// (ENOSPC and EIO may only show here, on filesystems that allocate lazily).
void sync_to_disk(const std::string& path);

}  // namespace dlwpt
