package org.vbake.agent;

import java.io.IOException;

/**
 * The link to the guest agent is unusable or the agent refused a request: a malformed frame,
 * an ERROR reply, a missing reply within the deadline, or the connection closing under a waiter.
 */
public class AgentProtocolException extends IOException {

    private static final long serialVersionUID = 1L;

    public AgentProtocolException(String message) {
        super(message);
    }

    public AgentProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
