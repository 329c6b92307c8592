// The dashboard's entry point: live stats, recent frames, "Try it" and "Webcam". Our own code, no CDN.

import { startApiKeyForm } from "./api.js";
import { startRecent } from "./recent.js";
import { startStats } from "./stats.js";
import { startTryIt } from "./tryit.js";
import { startWebcam } from "./webcam.js";

startApiKeyForm();
startStats(startRecent());
startTryIt();
startWebcam();
