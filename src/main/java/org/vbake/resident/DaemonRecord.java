package org.vbake.resident;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * What a resident daemon writes about itself to {@code daemon.json} in the instance's run dir:
 * enough for {@code vmemres status} to tell running from stopped from died, and for the next
 * command to clean up after a daemon that can no longer say anything.
 *
 * @param state  {@code starting}, {@code running}, {@code stopping} (powering off, or cleaning up
 *               after QEMU exited), {@code stopped}, {@code failed} (boot failed) or {@code died}
 *               (QEMU exited on its own)
 * @param pid    the daemon JVM
 * @param qemuPid QEMU, once started
 * @param message why it stopped, failed or died
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
@JsonIgnoreProperties(ignoreUnknown = true)
public record DaemonRecord(String state, long pid, Long qemuPid, long startedMillis, Long endedMillis,
        String message, String arch, String runtime, String driver, String suite, int memoryMb, int cpus,
        String log, String consoleLog) {

    static final String STARTING = "starting";
    static final String RUNNING = "running";
    static final String STOPPING = "stopping";
    static final String STOPPED = "stopped";
    static final String FAILED = "failed";
    static final String DIED = "died";

    private static final ObjectMapper JSON = new ObjectMapper();

    DaemonRecord with(String newState, Long newQemuPid, String newMessage) {
        Long ended = newState.equals(STARTING) || newState.equals(RUNNING) || newState.equals(STOPPING) ? null
                : System.currentTimeMillis();
        return new DaemonRecord(newState, pid, newQemuPid != null ? newQemuPid : qemuPid, startedMillis, ended,
                newMessage, arch, runtime, driver, suite, memoryMb, cpus, log, consoleLog);
    }

    /** True while the record claims a live daemon (which may have been killed since). */
    boolean claimsAlive() {
        return state.equals(STARTING) || state.equals(RUNNING) || state.equals(STOPPING);
    }

    /** Written beside and renamed, so a reader never sees half a record. */
    void write(Path file) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".new");
        Files.write(tmp, JSON.writeValueAsBytes(this));
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** The record, or null when there is none or it cannot be read. */
    static DaemonRecord read(Path file) {
        try {
            return Files.exists(file) ? JSON.readValue(file.toFile(), DaemonRecord.class) : null;
        } catch (IOException e) {
            return null;
        }
    }
}
