// A fault-injecting SQLite VFS for tests: it wraps the default VFS and fails xSync (fsync)
// while armed, as a full or failing disk would. Registered as the default VFS so that every
// connection of the process uses it. Thread-safe.
#pragma once

namespace redrive::store::sqlite {

// Installs the wrapper as the default VFS (idempotent).
void InstallFaultVfs();
// While armed, every sync fails with SQLITE_IOERR_FSYNC.
void ArmSyncFailure(bool armed);
// Syncs seen since installation (to check that commits really sync).
long SyncCount();

}  // namespace redrive::store::sqlite
