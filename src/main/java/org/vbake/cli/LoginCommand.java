package org.vbake.cli;

import java.io.Console;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.registry.ImageRef;
import org.vbake.image.registry.RegistryAuth;
import org.vbake.image.registry.RegistryClient;

/**
 * {@code vdkr login [-u USER] [--password-stdin] [SERVER]} and {@code logout [SERVER]}: done on
 * the host, where vbake pulls. The credentials are checked against the registry as docker checks
 * them, then written to the auth file the pulls read (0600); never on a command line, a kernel
 * command line or in a log. {@code -p PASSWORD} is refused for that reason.
 */
final class LoginCommand {

    private static final String USAGE = "usage: login [-u USER] [--password-stdin] [SERVER]; logout [SERVER]";

    private final ToolConfig config;
    private final InputStream stdin;
    private final PrintStream out;
    private final EventListener events;

    LoginCommand(ToolConfig config, InputStream stdin, PrintStream out, EventListener events) {
        this.config = config;
        this.stdin = stdin;
        this.out = out;
        this.events = events;
    }

    int login(List<String> args, Path authFile, Set<String> insecure, Path caCert) throws VbakeException {
        String user = null;
        boolean passwordStdin = false;
        String server = null;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("-u") || a.equals("--username")) {
                if (i + 1 >= args.size()) {
                    throw new BadInputException("login: " + a + " needs a user name", USAGE);
                }
                user = args.get(++i);
            } else if (a.startsWith("--username=")) {
                user = a.substring("--username=".length());
            } else if (a.equals("--password-stdin")) {
                passwordStdin = true;
            } else if (a.equals("-p") || a.equals("--password") || a.startsWith("--password=")) {
                throw new BadInputException("login: a password on the command line is refused (it shows in ps and "
                        + "in shell history)", "pipe it in: echo \"$PASS\" | " + config.prog()
                        + " login -u USER --password-stdin SERVER");
            } else if (a.startsWith("-")) {
                throw new BadInputException("login: unknown option " + a, USAGE);
            } else if (server == null) {
                server = a;
            } else {
                throw new BadInputException("login: unexpected " + a, USAGE);
            }
        }
        String host = host(server);
        Console console = System.console();
        if (user == null) {
            if (console == null) {
                throw new BadInputException("login: no user name (-u USER) and no terminal to ask on", USAGE);
            }
            user = console.readLine("Username: ");
        }
        String password;
        if (passwordStdin) {
            if (stdin == null) {
                throw new BadInputException("login: --password-stdin, but stdin is empty or a terminal");
            }
            try {
                password = new String(stdin.readAllBytes(), StandardCharsets.UTF_8).replaceAll("[\\r\\n]+$", "");
            } catch (IOException e) {
                throw new BadInputException("login: cannot read the password from stdin: " + e.getMessage());
            }
        } else if (console != null) {
            char[] p = console.readPassword("Password: ");
            password = p == null ? "" : new String(p);
        } else {
            throw new BadInputException("login: no terminal to ask for the password on", "pass --password-stdin");
        }
        if (user.isBlank() || password.isEmpty()) {
            throw new BadInputException("login: the user name and password must not be empty");
        }
        RegistryClient.create(insecure, RegistryAuth.of(host, user, password), events, caCert, false).checkLogin(host);
        Path file = RegistryAuth.store(RegistryAuth.loginFile(authFile, config.env(), isDocker()), host, user, password);
        out.println("Login Succeeded (credentials for " + host + " in " + file + ")");
        return ExitCodes.OK;
    }

    int logout(List<String> args, Path authFile) throws VbakeException {
        if (args.size() > 1 || (!args.isEmpty() && args.get(0).startsWith("-"))) {
            throw new BadInputException("logout: unexpected " + String.join(" ", args), USAGE);
        }
        String host = host(args.isEmpty() ? null : args.get(0));
        Path file = RegistryAuth.loginFile(authFile, config.env(), isDocker());
        if (RegistryAuth.remove(file, host)) {
            out.println("Removing login credentials for " + host + " (from " + file + ")");
        } else {
            out.println("Not logged in to " + host);
        }
        return ExitCodes.OK;
    }

    private boolean isDocker() {
        return config.toolName().equals("vdkr");
    }

    /** The registry host a SERVER argument names (Docker Hub when there is none). */
    private static String host(String server) throws BadInputException {
        if (server == null) {
            return ImageRef.DOCKER_HUB;
        }
        String s = server.replaceFirst("^(?i)https?://", "").replaceAll("/.*$", "");
        if (s.isEmpty() || !s.matches("[A-Za-z0-9.\\[\\]:-]+")) {
            throw new BadInputException("login: '" + server + "' is not a registry host");
        }
        return s.toLowerCase(java.util.Locale.ROOT);
    }
}
