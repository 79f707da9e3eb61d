package org.vbake.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;

/**
 * {@code -p [127.0.0.1:]HOST:CTR[/tcp|udp]} for a resident guest. The guest's engine has its own
 * bridge (docker0, netavark's), so the container publishes HOST on the guest's address as on any
 * host, and QEMU forwards 127.0.0.1:HOST on the build host to that port. The host side is always
 * 127.0.0.1; the guest side listens on all of the guest's addresses (its network is QEMU's private
 * one), so the address is taken off what the engine gets. With {@code --network=host} the
 * container listens on CTR in the guest itself, and the forward goes there.
 */
final class PublishedPorts {

    /** One forward: host port to guest port. */
    record Port(String protocol, int host, int guest) {
    }

    private static final Pattern SPEC = Pattern.compile("(?:(127\\.0\\.0\\.1|localhost|0\\.0\\.0\\.0|):)?"
            + "(\\d{1,5}):(\\d{1,5})(?:/(tcp|udp))?");

    private PublishedPorts() {
    }

    /** The forwards {@code args} needs: host port to the guest port the container's traffic arrives on. */
    static List<Port> parse(RunArgs args) throws BadInputException {
        List<Port> ports = new ArrayList<>();
        boolean hostNetwork = "host".equals(args.network());
        for (RunArgs.Publish p : args.publishes()) {
            for (Port port : parse(p.value())) {
                ports.add(hostNetwork ? port : new Port(port.protocol(), port.host(), port.host()));
            }
        }
        return ports;
    }

    /** One {@code [127.0.0.1:]HOST:PORT[/proto]}: host port to container port. */
    static List<Port> parse(String spec) throws BadInputException {
        Matcher m = SPEC.matcher(spec);
        if (!m.matches()) {
            throw new BadInputException("-p " + spec + ": give HOST_PORT:CONTAINER_PORT[/tcp|udp]",
                    "ranges, random host ports and other host addresses than 127.0.0.1 are not supported");
        }
        int host = Integer.parseInt(m.group(2));
        int guest = Integer.parseInt(m.group(3));
        if (host < 1 || host > 65535 || guest < 1 || guest > 65535) {
            throw new BadInputException("-p " + spec + ": ports are 1 to 65535");
        }
        return List.of(new Port(m.group(4) != null ? m.group(4) : "tcp", host, guest));
    }

    /** The command with each -p's host address taken off (the guest publishes on all its addresses). */
    static List<String> rewrite(List<String> command, RunArgs args) {
        List<String> out = new ArrayList<>(command);
        for (RunArgs.Publish p : args.publishes()) {
            String bare = p.value().replaceFirst("^(127\\.0\\.0\\.1|localhost|0\\.0\\.0\\.0|):", "");
            // Indexes are relative to the words after the verb.
            int at = p.index() + 1 + (p.words() == 2 ? 1 : 0);
            String word = out.get(at);
            out.set(at, word.substring(0, word.length() - p.value().length()) + bare);
        }
        return out;
    }
}
