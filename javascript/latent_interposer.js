// Latent Interposer: tooltips for the script's controls and its settings.
// The webui shows `titles[label]` as the tooltip of an element with that label (javascript/hints.js,
// loaded before extension scripts). This only adds entries to that table: no observers, no work on
// page updates.
(function () {
    if (typeof titles === "undefined") {
        return;
    }
    Object.assign(titles, {
        // txt2img > Script > Latent Interposer
        "Latent Interposer": "Convert the first pass's latents into the hires checkpoint's latent space (SDXL <-> SD1.5, SD3) right before the hires pass: no VAE decode/encode in between.",
        "Enable Latent Interposer": "Convert the latents when hires fix (with a Latent upscaler) or the refiner switches to a checkpoint of another model family.",
        "Interposer direction": "Auto reads the families of the first-pass and hires checkpoints; pick a direction only for checkpoints it cannot recognise. 'From settings' uses Settings > Latent Interposer.",
        "Interposer precision": "Precision of the interposer network. fp16 is fastest on GPUs; an fp16 overflow is recomputed in fp32 automatically.",
        "Interposer refiner strategy": "Noise-preserving: keep the sampler's noise and convert only its clean estimate. Restart: convert the clean estimate and add fresh noise at the switch.",
        // Settings > Latent Interposer
        "Default direction": "Used when the script's direction is 'From settings'. Auto: from the first-pass and hires checkpoints.",
        "Precision": "Auto: fp16 on a GPU, fp32 on the CPU.",
        "Device": "Where the interposer runs. Auto: on the device that holds the latents (the webui's GPU).",
        "Weights folder": "Folder with {src}-to-{dst}_interposer-v4.0.safetensors files, directly or in a v4.0 subfolder. Empty: models/LatentInterposer.",
        "Download missing weights from the Hugging Face hub": "Fetch city96/SD-Latent-Interposer v4.0 files into the weights folder on first use. Off: only local files are used (a missing file stops the generation with the URL to get it from).",
        "Apply automatically whenever hires fix or the refiner crosses model families": "Convert without selecting the script, also in X/Y/Z plot and in API calls.",
        "Warn when a global SD VAE override is forced onto the other family": "A VAE chosen in Settings > SD VAE is applied to every checkpoint; across families that gives blue or black images.",
        "Refiner switch strategy": "How the sampler's state crosses families at the refiner switch: noise-preserving (default) or restart with fresh noise (Fooocus-style).",
        "Extra noise at a restart switch": "Restart strategy only: how much more noise than the switch sigma to add (0.2 = 20% more).",
        // txt2img > Hires. fix > Upscaler
        "Latent (NN)": "Learned latent upscaler (city96's SD-Latent-Upscaler v2.1): sharper than the Latent modes at the same speed, no VAE decode/encode. With the Latent Interposer it also converts SDXL <-> SD1.5 latents for a hires checkpoint of the other family.",
        // X/Y/Z plot axis
        "Latent interposer": "X/Y/Z plot axis: Off, On, or an explicit direction per cell."
    });
})();
