#include "store/sqlite/fault_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace redrive::store::sqlite {
namespace {

std::atomic<bool> g_armed{false};
std::atomic<long> g_syncs{0};
sqlite3_vfs* g_base = nullptr;
sqlite3_vfs g_vfs;

// A file of the wrapper: its own io_methods, then the base file it forwards to.
struct FaultFile {
  sqlite3_file base;  // must be first: SQLite sees this
  sqlite3_file* real;
};

sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f)->real; }

int Close(sqlite3_file* f) {
  int rc = Real(f)->pMethods->xClose(Real(f));
  sqlite3_free(Real(f));
  return rc;
}
int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 o) {
  return Real(f)->pMethods->xRead(Real(f), p, n, o);
}
int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 o) {
  return Real(f)->pMethods->xWrite(Real(f), p, n, o);
}
int Truncate(sqlite3_file* f, sqlite3_int64 n) { return Real(f)->pMethods->xTruncate(Real(f), n); }
int Sync(sqlite3_file* f, int flags) {
  ++g_syncs;
  if (g_armed) return SQLITE_IOERR_FSYNC;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* n) { return Real(f)->pMethods->xFileSize(Real(f), n); }
int Lock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int Unlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int CheckReserved(sqlite3_file* f, int* r) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), r);
}
int FileControl(sqlite3_file* f, int op, void* a) {
  return Real(f)->pMethods->xFileControl(Real(f), op, a);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShmMap(sqlite3_file* f, int i, int sz, int e, void volatile** pp) {
  return Real(f)->pMethods->xShmMap(Real(f), i, sz, e, pp);
}
int ShmLock(sqlite3_file* f, int o, int n, int fl) {
  return Real(f)->pMethods->xShmLock(Real(f), o, n, fl);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int d) { return Real(f)->pMethods->xShmUnmap(Real(f), d); }
int Fetch(sqlite3_file* f, sqlite3_int64 o, int n, void** pp) {
  return Real(f)->pMethods->xFetch(Real(f), o, n, pp);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 o, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), o, p);
}

const sqlite3_io_methods kMethods = {3,
                                     Close,
                                     Read,
                                     Write,
                                     Truncate,
                                     Sync,
                                     FileSize,
                                     Lock,
                                     Unlock,
                                     CheckReserved,
                                     FileControl,
                                     SectorSize,
                                     DeviceCharacteristics,
                                     ShmMap,
                                     ShmLock,
                                     ShmBarrier,
                                     ShmUnmap,
                                     Fetch,
                                     Unfetch};

int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FaultFile*>(file);
  ff->real = static_cast<sqlite3_file*>(sqlite3_malloc(g_base->szOsFile));
  if (!ff->real) return SQLITE_NOMEM;
  std::memset(ff->real, 0, static_cast<size_t>(g_base->szOsFile));
  int rc = g_base->xOpen(g_base, name, ff->real, flags, out_flags);
  if (rc != SQLITE_OK || !ff->real->pMethods) {
    sqlite3_free(ff->real);
    ff->base.pMethods = nullptr;
    return rc;
  }
  ff->base.pMethods = &kMethods;
  return SQLITE_OK;
}
int Delete(sqlite3_vfs*, const char* n, int s) { return g_base->xDelete(g_base, n, s); }
int Access(sqlite3_vfs*, const char* n, int f, int* r) { return g_base->xAccess(g_base, n, f, r); }
int FullPathname(sqlite3_vfs*, const char* n, int sz, char* out) {
  return g_base->xFullPathname(g_base, n, sz, out);
}
void* DlOpen(sqlite3_vfs*, const char* n) { return g_base->xDlOpen(g_base, n); }
void DlError(sqlite3_vfs*, int n, char* m) { g_base->xDlError(g_base, n, m); }
void (*DlSym(sqlite3_vfs*, void* h, const char* s))(void) { return g_base->xDlSym(g_base, h, s); }
void DlClose(sqlite3_vfs*, void* h) { g_base->xDlClose(g_base, h); }
int Randomness(sqlite3_vfs*, int n, char* out) { return g_base->xRandomness(g_base, n, out); }
int Sleep(sqlite3_vfs*, int us) { return g_base->xSleep(g_base, us); }
int CurrentTime(sqlite3_vfs*, double* t) { return g_base->xCurrentTime(g_base, t); }
int GetLastError(sqlite3_vfs*, int n, char* m) { return g_base->xGetLastError(g_base, n, m); }
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) {
  return g_base->xCurrentTimeInt64(g_base, t);
}

}  // namespace

void InstallFaultVfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = sqlite3_vfs_find(nullptr);
    g_vfs = *g_base;
    g_vfs.zName = "redrive-fault";
    g_vfs.szOsFile = sizeof(FaultFile);
    g_vfs.pAppData = nullptr;
    g_vfs.xOpen = Open;
    g_vfs.xDelete = Delete;
    g_vfs.xAccess = Access;
    g_vfs.xFullPathname = FullPathname;
    g_vfs.xDlOpen = DlOpen;
    g_vfs.xDlError = DlError;
    g_vfs.xDlSym = DlSym;
    g_vfs.xDlClose = DlClose;
    g_vfs.xRandomness = Randomness;
    g_vfs.xSleep = Sleep;
    g_vfs.xCurrentTime = CurrentTime;
    g_vfs.xGetLastError = GetLastError;
    g_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    g_vfs.xSetSystemCall = nullptr;
    g_vfs.xGetSystemCall = nullptr;
    g_vfs.xNextSystemCall = nullptr;
    g_vfs.iVersion = 2;
    sqlite3_vfs_register(&g_vfs, /*makeDflt=*/1);
  });
}

void ArmSyncFailure(bool armed) { g_armed = armed; }
long SyncCount() { return g_syncs; }

}  // namespace redrive::store::sqlite
