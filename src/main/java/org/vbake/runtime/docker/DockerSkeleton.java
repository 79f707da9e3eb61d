package org.vbake.runtime.docker;

import java.nio.charset.StandardCharsets;
import org.vbake.storage.FsTree;
import org.vbake.storage.NotMirroredException;

/**
 * What dockerd makes in an empty data root when it starts, as an export shows it (the runtime-only
 * parts it also makes are left out of every export): the data root itself (0710), the image store
 * ({@code image/DRIVER/}: distribution, imagedb content and metadata, layerdb with its tmp, an
 * empty repositories.json), the driver's home, the plugin store and the volume store.
 */
final class DockerSkeleton {

    private DockerSkeleton() {
    }

    /** @param v20 docker 20.10, which also makes plugins/storage/ingest and trust/ */
    static FsTree tree(String driver, boolean v20) throws NotMirroredException {
        FsTree t = new FsTree(0710, 0, 0);
        String image = "image/" + driver;
        for (String d : new String[] {"image", image, image + "/distribution", image + "/imagedb",
            image + "/imagedb/content", image + "/imagedb/content/sha256", image + "/imagedb/metadata",
            image + "/imagedb/metadata/sha256", image + "/layerdb"}) {
            t.mkdir(d, 0700, 0, 0);
        }
        t.mkdir(image + "/layerdb/sha256", 0755, 0, 0);
        t.mkdir(image + "/layerdb/tmp", 0755, 0, 0);
        DockerTreeWriter.file(t, image + "/repositories.json", 0600,
                "{\"Repositories\":{}}".getBytes(StandardCharsets.US_ASCII));
        if (driver.equals("overlay2")) {
            t.mkdir("overlay2", 0710, 0, 0);
            t.mkdir("overlay2/l", 0700, 0, 0);
        }
        t.mkdir("plugins", 0700, 0, 0);
        if (v20) {
            t.mkdir("plugins/storage", 0755, 0, 0);
            t.mkdir("plugins/storage/ingest", 0755, 0, 0);
        }
        t.mkdir("plugins/tmp", 0700, 0, 0);
        if (v20) {
            t.mkdir("trust", 0700, 0, 0);
        }
        t.mkdir("volumes", 0701, 0, 0);
        return t;
    }
}
