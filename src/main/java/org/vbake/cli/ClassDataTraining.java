package org.vbake.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * Loads the classes that vbake's commands use, so that {@code bin/vbake} can write its JVM
 * class-data archive from this run instead of from whichever command happens to run first after
 * a build (which would leave the other commands' classes out of it).
 */
final class ClassDataTraining {

    /** Run under this program name by the launcher, with -XX:ArchiveClassesAtExit. */
    static final String PROG = "vbake-cds-train";

    private static final List<String> PREFIXES = List.of("org/vbake/", "com/fasterxml/jackson/core/",
            "com/fasterxml/jackson/databind/", "com/fasterxml/jackson/annotation/",
            "org/apache/commons/compress/archivers/tar/");

    private ClassDataTraining() {
    }

    static int run() {
        Path jar;
        try {
            jar = Path.of(ClassDataTraining.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (Exception e) {
            return 1;
        }
        if (!jar.toString().endsWith(".jar")) {
            return 0;   // run from classes: nothing to archive
        }
        ClassLoader loader = ClassDataTraining.class.getClassLoader();
        int loaded = 0;
        try (JarFile file = new JarFile(jar.toFile())) {
            for (Enumeration<JarEntry> e = file.entries(); e.hasMoreElements(); ) {
                String name = e.nextElement().getName();
                if (!name.endsWith(".class") || name.contains("module-info") || PREFIXES.stream().noneMatch(name::startsWith)) {
                    continue;
                }
                try {
                    // Reflection links (and so verifies) the class: the archive then holds it verified.
                    Class.forName(name.substring(0, name.length() - 6).replace('/', '.'), false, loader).getDeclaredConstructors();
                    loaded++;
                } catch (Throwable ignored) {
                    // optional dependencies of a class that vbake never uses
                }
            }
        } catch (IOException e) {
            return 1;
        }
        exercise();
        return loaded > 0 ? 0 : 1;
    }

    /**
     * Runs the host-side work of a command answered by a resident guest, so the JDK classes it
     * pulls in (streams, concurrency, NIO, reflection) are archived too.
     */
    private static void exercise() {
        try {
            EngineCli.Args args = new EngineCli.Args();
            FastOptionParser.parse(args, new String[] {"-a", "aarch64", "--state-dir", "/nonexistent", "images"});
            DockerImagesTable.render("[{\"Id\":\"sha256:00\",\"RepoTags\":[\"a:b\"],\"Created\":1,\"Size\":1}]"
                    .getBytes(java.nio.charset.StandardCharsets.UTF_8), DockerImagesTable.Options.parse(List.of()),
                    System.currentTimeMillis());
            Path tmp = java.nio.file.Files.createTempDirectory("vbake-cds-");
            org.vbake.storage.InputDisk.create(tmp).close();
            org.vbake.instance.Trees.deleteTree(tmp);
            java.util.concurrent.CompletableFuture.supplyAsync(() -> List.of(1, 2).stream().map(i -> i + 1).toList())
                    .get();
            java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX).close();
            org.vbake.agent.Protocol.toJson(org.vbake.agent.Protocol.Hello.fromClient("cds"));
        } catch (Exception ignored) {
            // training only: whatever ran is archived
        }
    }
}
