package org.vbake.session;

import java.nio.file.Path;
import org.vbake.agent.AgentClient;
import org.vbake.agent.Protocol.Hello;
import org.vbake.api.BadInputException;
import org.vbake.api.GuestException;
import org.vbake.instance.StateDir;

/**
 * A resident guest (vmemres) used through its daemon: the same commands over the daemon's relay,
 * no boot, no instance lock of its own (the daemon holds it); the end only lets go of the link.
 */
final class ResidentGuest implements Guest {

    private final AgentClient daemon;
    private final Hello hello;
    private final StateDir state;

    ResidentGuest(AgentClient daemon, Hello hello, StateDir state) {
        this.daemon = daemon;
        this.hello = hello;
        this.state = state;
    }

    @Override
    public AgentClient agent() {
        return daemon;
    }

    @Override
    public Hello hello() {
        return hello;
    }

    @Override
    public boolean isAlive() {
        return true;
    }

    @Override
    public boolean isResident() {
        return true;
    }

    @Override
    public String how() {
        return "resident";
    }

    @Override
    public String postMortem() {
        return null;   // the daemon reports its guest's death in the command's error
    }

    @Override
    public GuestException failure(String message, Throwable cause) {
        return new GuestException(message, state.consoleLog(), cause);
    }

    @Override
    public void attachDisk(String name, Path file) throws BadInputException {
        throw new BadInputException("an " + name + " disk cannot be added to a resident guest",
                "stop it first ('vmemres stop'); a command then gets a guest of its own");
    }

    @Override
    public void end(boolean save) {
        daemon.close();   // the resident guest stays up; the daemon ends this client's commands
    }
}
