namespace Llm.Training;

/// <summary>
/// Linear warm-up to the peak rate, then cosine decay to a floor (GPT-3: 10 % of peak).
/// lr(s) = peak·(s+1)/W for s &lt; W; else floor + ½(peak − floor)(1 + cos(π·(s−W)/(S−W))).
/// </summary>
public sealed record LearningRateSchedule(float PeakRate, int WarmupSteps, int TotalSteps, float FloorFraction = 0.1f)
{
    public float At(int step)
    {
        if (step < WarmupSteps) return PeakRate * (step + 1) / WarmupSteps;
        float floor = PeakRate * FloorFraction;
        if (step >= TotalSteps) return floor;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return (float)(floor + 0.5 * (PeakRate - floor) * (1 + Math.Cos(Math.PI * progress)));
    }
}
