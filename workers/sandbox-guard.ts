/**
 * Loaded (--import) into every sandboxed processor's child process. BullMQ's children outlive
 * a parent that dies without closing them (SIGKILL, a crash); such an orphan would keep running
 * a job nobody owns. When the IPC channel to the parent drops, the child exits.
 */
process.on('disconnect', () => process.exit(1));
