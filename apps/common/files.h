#pragma once

#include <functional>
#include <optional>
#include <string>

namespace dlwpt::apps {

/// "<host> pid <pid>": this process, for the records that concurrent runs leave for each other.
std::string this_process();

/// Whether two paths name the same existing file (after links and relative parts).
bool same_file(const std::string& a, const std::string& b);

/// An exclusive POSIX record lock (fcntl) on a lock file, held until release or destruction.
/// The kernel (or the NFS lock manager) drops it when the process ends, even by kill -9, so a
/// crashed run's work is free again at once. The file records "host pid N" and a note (what
/// the holder works on) for the messages of the others; it is never removed, since removing it
/// would let two processes lock two different files of one name.
class FileLock {
 public:
  /// What the lock file of a live holder says.
  struct Holder {
    std::string who;   ///< "host pid 123", or "another process" when it recorded nothing
    std::string note;  ///< what it works on ("" when not recorded)
  };

  FileLock() = default;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { release(); }

  /// Takes the lock on `path` (created when missing) without waiting and records `note`.
  /// Returns nullopt when taken (or already held by this object), otherwise the live holder.
  /// Throws FileError when the file cannot be opened or the filesystem refuses locks.
  std::optional<Holder> try_lock(const std::string& path, const std::string& note);

  bool held() const { return fd_ >= 0; }
  void release();

 private:
  int fd_ = -1;
};

}  // namespace dlwpt::apps
