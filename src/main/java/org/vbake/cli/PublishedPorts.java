package org.vbake.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;

/**
 * {@code -p [127.0.0.1:]HOST:CTR[/tcp|udp]} for a resident guest. The guest has no container
 * bridge (no iptables, seconds saved at every engine start), so a container that publishes ports
 * runs on the guest's network ({@code --network=host}) and QEMU forwards 127.0.0.1:HOST on the
 * build host to port CTR in the guest. Consequences: CTR must be free in the guest, and the host
 * side is always 127.0.0.1.
 */
final class PublishedPorts {

    /** One forward: host port to guest (= container) port. */
    record Port(String protocol, int host, int guest) {
    }

    private static final Pattern SPEC = Pattern.compile("(?:(127\\.0\\.0\\.1|localhost|0\\.0\\.0\\.0|):)?"
            + "(\\d{1,5}):(\\d{1,5})(?:/(tcp|udp))?");

    private PublishedPorts() {
    }

    static List<Port> parse(RunArgs args) throws BadInputException {
        List<Port> ports = new ArrayList<>();
        for (RunArgs.Publish p : args.publishes()) {
            ports.addAll(parse(p.value()));
        }
        if (!ports.isEmpty() && args.networkGiven()) {
            throw new BadInputException("-p cannot be combined with --network here",
                    "a container that publishes ports runs on the guest's own network");
        }
        return ports;
    }

    /** One {@code [127.0.0.1:]HOST:PORT[/proto]}. */
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

    /** The command without its -p options and with {@code --network=host} after the verb. */
    static List<String> rewrite(List<String> command, RunArgs args) {
        List<String> out = new ArrayList<>(command);
        // Indexes are relative to the words after the verb; remove from the back.
        List<RunArgs.Publish> ps = new ArrayList<>(args.publishes());
        ps.sort((a, b) -> Integer.compare(b.index(), a.index()));
        for (RunArgs.Publish p : ps) {
            for (int w = 0; w < p.words(); w++) {
                out.remove(p.index() + 1);
            }
        }
        out.add(1, "--network=host");
        return out;
    }
}
